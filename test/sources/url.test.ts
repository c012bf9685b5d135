import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/lib/errors.js';
import { assertLooksLikeModel } from '../../src/lib/http.js';
import { resolveModel } from '../../src/sources/index.js';
import { fakeSafetensors } from '../fixtures/http-server.js';
import { sourceContext, configInTempWorkspace } from '../fixtures/source-context.js';
import { startStorageFixture, type StorageFixture } from '../fixtures/storage-server.js';

let storage: StorageFixture;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  storage = await startStorageFixture();
});

afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await storage?.close();
});

async function context() {
  const { config, cleanup } = await configInTempWorkspace({});
  cleanups.push(cleanup);
  return sourceContext(config);
}

function withType(type: string): Response {
  return new Response('x', { headers: { 'content-type': type } });
}

describe('assertLooksLikeModel', () => {
  it('refuses a web page or JSON in place of a model file and accepts real HTML or JSON files', () => {
    expect(() => assertLooksLikeModel(withType('text/html; charset=utf-8'), 'model.safetensors', 'GET x')).toThrow(
      /GET x answered with a web page instead of the file model.safetensors/,
    );
    expect(() => assertLooksLikeModel(withType('application/json'), 'model.ckpt', 'GET x')).toThrow(UserError);
    expect(() => assertLooksLikeModel(withType('application/problem+json'), '', 'GET x')).toThrow(/JSON/);
    expect(() => assertLooksLikeModel(withType('application/json'), 'config.json', 'GET x')).not.toThrow();
    expect(() => assertLooksLikeModel(withType('text/html'), 'index.html', 'GET x')).not.toThrow();
    expect(() => assertLooksLikeModel(withType('application/octet-stream'), 'model.safetensors', 'GET x')).not.toThrow();
    expect(() => assertLooksLikeModel(new Response('x'), 'model.safetensors', 'GET x')).not.toThrow();
  });
});

describe('url source probe', () => {
  it('refuses a link that answers a login page', async () => {
    const url = storage.put('pages/model.safetensors', Buffer.from('<html>Sign in</html>'), { contentType: 'text/html' });
    await expect(resolveModel({ source: 'url', url }, await context())).rejects.toThrow(/answered with a web page/);
  });

  it('still resolves a real model file', async () => {
    const model = fakeSafetensors('url', 1000);
    const url = storage.put('files/model.safetensors', model);
    const [file] = await resolveModel({ source: 'url', url }, await context());
    expect(file).toMatchObject({ name: 'model.safetensors', bytes: model.length });
  });
});

describe('url source names', () => {
  it('accepts JSON when the user saves it under a .json name', async () => {
    const url = storage.put('api/config', Buffer.from('{"layers":12}'), { contentType: 'application/json' });
    await expect(resolveModel({ source: 'url', url }, await context())).rejects.toThrow(/answered with JSON/);
    const [file] = await resolveModel({ source: 'url', url, filename: 'config.json' }, await context());
    expect(file).toMatchObject({ name: 'config.json', bytes: 13 });
  });
});
