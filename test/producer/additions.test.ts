import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModelSpec } from '../../src/config/model-spec.js';
import { ADDITIONS_FILE, RuntimeAdditions } from '../../src/producer/additions.js';
import { silentLog } from '../helpers.js';

const model = (url: string) => ({ origin: 'api', spec: ModelSpec.parse({ source: 'url', url, category: 'loras' }) });

describe('RuntimeAdditions', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-additions-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('remembers each model and node once, across instances, and loses none when added at once', async () => {
    const a = new RuntimeAdditions(dir, []);
    await Promise.all(Array.from({ length: 30 }, (_, i) => new RuntimeAdditions(dir, []).addModels([model(`https://example.com/${i % 20}.safetensors`)])));
    await a.addNode({ name: 'Impact', url: 'https://github.com/x/Impact', ref: 'v1' });
    await a.addNode({ name: 'Impact', url: 'https://github.com/x/Impact', ref: 'v1' });
    const loaded = await new RuntimeAdditions(dir, []).load();
    expect(loaded.models.map((m) => m.spec.source === 'url' && m.spec.url).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `https://example.com/${i}.safetensors`).sort(),
    );
    expect(loaded.nodes).toEqual([{ name: 'Impact', url: 'https://github.com/x/Impact', ref: 'v1' }]);
  });

  it('never writes an entry that holds a secret value', async () => {
    await new RuntimeAdditions(dir, ['tok-123456']).addModels([model('https://example.com/a.safetensors?token=tok-123456'), model('https://example.com/b.safetensors')]);
    const text = await readFile(path.join(dir, ADDITIONS_FILE), 'utf8');
    expect(text).not.toContain('tok-123456');
    expect((await new RuntimeAdditions(dir, []).load()).models).toHaveLength(1);
  });

  it('keeps a damaged file aside and starts over', async () => {
    await writeFile(path.join(dir, ADDITIONS_FILE), '{"version":1,"models":[{"id"');
    expect(await new RuntimeAdditions(dir, [], silentLog).load()).toEqual({ models: [], nodes: [] });
    expect((await readdir(dir)).filter((n) => n.startsWith(`${ADDITIONS_FILE}.damaged-`))).toHaveLength(1);
  });
});
