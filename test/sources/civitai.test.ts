import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredModelSpec } from '../../src/config/model-spec.js';
import { TransientError, UserError } from '../../src/lib/errors.js';
import { civitaiSource, folderOfCivitaiType } from '../../src/sources/civitai.js';
import { resolveModel } from '../../src/sources/index.js';
import { startCivitaiFixture, type CivitaiFixture } from '../fixtures/civitai-server.js';
import { fakeSafetensors, sawSecret, sha256Hex } from '../fixtures/http-server.js';
import { fetchResolved, sourceContext, configInTempWorkspace } from '../fixtures/source-context.js';
import { startStorageFixture, type StorageFixture } from '../fixtures/storage-server.js';
import { failure } from '../helpers.js';

const TOKEN = 'civitai-key-3f9a7c21d4e8';
const checkpoint = fakeSafetensors('checkpoint', 6000);
const pickle = Buffer.alloc(3000, 7);
const lora = fakeSafetensors('lora', 2500);

let storage: StorageFixture;
let civitai: CivitaiFixture;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  storage = await startStorageFixture();
  civitai = await startCivitaiFixture({
    storage,
    token: TOKEN,
    models: [
      {
        versionId: 101,
        type: 'Checkpoint',
        files: [
          { id: 1, name: 'dreamy.ckpt', content: pickle, primary: true },
          { id: 2, name: 'dreamy.safetensors', content: checkpoint },
          { id: 3, name: 'dreamy-training.zip', content: Buffer.alloc(10), type: 'Training Data' },
        ],
      },
      { versionId: 102, type: 'LORA', access: 'login', files: [{ id: 4, name: 'detail tweaker.safetensors', content: lora, primary: true }] },
      { versionId: 103, type: 'LORA', access: 'early-access', deadline: '2031-03-04T05:06:07.000Z', files: [{ id: 5, name: 'ea.safetensors', content: lora }] },
      { versionId: 104, type: 'Checkpoint', access: 'no-access', files: [{ id: 6, name: 'private.safetensors', content: lora }] },
      { versionId: 105, type: 'VAE', access: 'archived', files: [{ id: 7, name: 'old.safetensors', content: lora }] },
      { versionId: 106, type: 'TextualInversion', files: [{ id: 8, name: 'easynegative.safetensors', content: lora, primary: true }] },
      { versionId: 107, type: 'Poses', files: [{ id: 9, name: 'poses.zip', content: Buffer.alloc(64, 1), format: 'Other', primary: true }] },
      // Two versions of one model (older first), the newer with several files.
      { versionId: 201, modelId: 2000, type: 'LORA', files: [{ id: 21, name: 'style-v1.safetensors', content: lora, primary: true }] },
      {
        versionId: 202,
        modelId: 2000,
        type: 'LORA',
        files: [
          { id: 22, name: 'style-v2.safetensors', content: checkpoint, primary: true },
          { id: 23, name: 'style-v2-small.safetensors', content: lora },
        ],
      },
      {
        versionId: 108,
        type: 'LORA',
        files: [{ id: 10, name: 'broken.safetensors', content: Buffer.from('{"error":"expired"}'), primary: true, contentType: 'application/json' }],
      },
    ],
  });
});

afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await civitai?.close();
  await storage?.close();
});

async function context(env: Record<string, string> = {}) {
  const { config, cleanup } = await configInTempWorkspace({ CIVITAI_BASE_URL: civitai.url, ...env });
  cleanups.push(cleanup);
  return sourceContext(config);
}

function spec(versionId: string, extra: Partial<Extract<StoredModelSpec, { source: 'civitai' }>> = {}): StoredModelSpec {
  return { source: 'civitai', versionId, ...extra };
}

describe('CivitAI source', () => {
  it('resolves the SafeTensor file with its exact size, sha256 and folder', async () => {
    const [file, ...rest] = await resolveModel(spec('101'), await context());
    expect(rest).toHaveLength(0);
    expect(file).toMatchObject({
      name: 'dreamy.safetensors',
      bytes: checkpoint.length,
      sha256: sha256Hex(checkpoint),
      category: 'checkpoints',
    });
    expect(file!.request.url).toBe(`${civitai.url}/api/download/models/101?fileId=2`);
    expect(file!.request.headers).toEqual({});
    const downloaded = await fetchResolved(file!.request);
    expect(downloaded).toEqual({ status: 200, bytes: checkpoint.length, sha256: sha256Hex(checkpoint) });
  });

  it('takes a model\'s newest version when only the model is named (a model page, an AIR without @version)', async () => {
    const [file] = await resolveModel({ source: 'civitai', modelId: '2000' }, await context());
    expect(file).toMatchObject({ name: 'style-v2.safetensors', sha256: sha256Hex(checkpoint) });
    expect(file!.request.url).toBe(`${civitai.url}/api/download/models/202?fileId=22`);
    const err = await failure(resolveModel({ source: 'civitai', modelId: '999999' }, await context()));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe('CivitAI has no model 999999: check the model id in its page\'s URL (civitai.com/models/<id>)');
  });

  it('picks the file named by fileId or file in a multi-file version, else the primary one', async () => {
    const ctx = await context();
    expect((await resolveModel(spec('202', { fileId: '23' }), ctx))[0]).toMatchObject({ name: 'style-v2-small.safetensors', sha256: sha256Hex(lora) });
    expect((await resolveModel(spec('202', { file: 'style-v2-small.safetensors' }), ctx))[0]!.request.url).toMatch(/fileId=23$/);
    expect((await resolveModel(spec('202'), ctx))[0]!.name).toBe('style-v2.safetensors');
    const err = await failure(resolveModel(spec('202', { fileId: '99' }), ctx));
    expect(err.message).toBe(
      'CivitAI model version 202 has no file fileId 99; it has: style-v2.safetensors (fileId 22), style-v2-small.safetensors (fileId 23)',
    );
  });

  it('lets the manifest rename the file and pin its sha256', async () => {
    const pinned = 'ab'.repeat(32);
    const [file] = await civitaiSource.resolve({ source: 'civitai', versionId: '101', filename: 'mine.safetensors', sha256: pinned }, await context());
    expect(file).toMatchObject({ name: 'mine.safetensors', sha256: pinned });
  });

  it('maps every CivitAI model type with a ComfyUI folder', async () => {
    expect(
      Object.fromEntries(
        ['Checkpoint', 'LORA', 'LoCon', 'DoRA', 'TextualInversion', 'VAE', 'Controlnet', 'Upscaler', 'Hypernetwork', 'TextEncoder', 'CLIP', 'UNet', 'CLIPVision', 'MotionModule', 'Poses', 'Workflows', 'Other'].map(
          (t) => [t, folderOfCivitaiType(t)],
        ),
      ),
    ).toEqual({
      Checkpoint: 'checkpoints',
      LORA: 'loras',
      LoCon: 'loras',
      DoRA: 'loras',
      TextualInversion: 'embeddings',
      VAE: 'vae',
      Controlnet: 'controlnet',
      Upscaler: 'upscale_models',
      Hypernetwork: 'hypernetworks',
      TextEncoder: 'text_encoders',
      CLIP: 'text_encoders',
      UNet: 'diffusion_models',
      CLIPVision: 'clip_vision',
      MotionModule: 'animatediff_models',
      Poses: undefined,
      Workflows: undefined,
      Other: undefined,
    });
    const ctx = await context();
    expect((await resolveModel(spec('106'), ctx))[0]).toMatchObject({ name: 'easynegative.safetensors', category: 'embeddings' });
    const [poses] = await resolveModel(spec('107'), ctx);
    expect(poses!.name).toBe('poses.zip');
    expect(poses!.category).toBeUndefined();
  });

  it('sends the token to CivitAI only, never across the 307 to storage', async () => {
    const ctx = await context({ CIVITAI_TOKEN: TOKEN });
    const storageSeen = storage.requests.length;
    const [file] = await resolveModel(spec('102'), ctx);
    expect(file).toMatchObject({ name: 'detail tweaker.safetensors', bytes: lora.length, sha256: sha256Hex(lora), category: 'loras' });
    expect(file!.request.headers).toEqual({ authorization: `Bearer ${TOKEN}` });
    expect(file!.request.headersOrigin).toBe(civitai.url);

    expect(await fetchResolved(file!.request)).toEqual({ status: 200, bytes: lora.length, sha256: sha256Hex(lora) });
    const toStorage = storage.requests.slice(storageSeen);
    expect(toStorage.length).toBeGreaterThanOrEqual(2);
    expect(toStorage.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(sawSecret(toStorage, TOKEN)).toBe(false);
    expect(civitai.requests.some((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('probes with one ranged byte instead of downloading', async () => {
    const seen = storage.requests.length;
    await resolveModel(spec('101'), await context());
    const probes = storage.requests.slice(seen);
    expect(probes).toHaveLength(1);
    expect(probes[0]!.headers.range).toBe('bytes=0-0');
  });

  it('asks for CIVITAI_TOKEN when a model requires login (401)', async () => {
    const err = await failure(resolveModel(spec('102'), await context()));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain('this model requires login: set CIVITAI_TOKEN');
  });

  it('says when CivitAI refuses the token', async () => {
    const err = await failure(resolveModel(spec('102'), await context({ CIVITAI_TOKEN: 'not-the-right-key' })));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain('this model requires login and CivitAI refused CIVITAI_TOKEN');
  });

  it('asks for CIVITAI_TOKEN when CivitAI redirects to its login page', async () => {
    const redirecting = await startCivitaiFixture({
      storage,
      loginRedirect: true,
      models: [{ versionId: 102, type: 'LORA', access: 'login', files: [{ id: 4, name: 'x.safetensors', content: lora }] }],
    });
    try {
      const { config, cleanup } = await configInTempWorkspace({ CIVITAI_BASE_URL: redirecting.url });
      cleanups.push(cleanup);
      const err = await failure(resolveModel(spec('102'), sourceContext(config)));
      expect(err).toBeInstanceOf(UserError);
      expect(err.message).toContain('this model requires login: set CIVITAI_TOKEN');
      expect(redirecting.requests.some((r) => r.path.startsWith('/login?') && r.path.includes('reason=download-auth'))).toBe(true);
    } finally {
      await redirecting.close();
    }
  });

  it('names the early-access date', async () => {
    const err = await failure(resolveModel(spec('103'), await context({ CIVITAI_TOKEN: TOKEN })));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/early access until 2031-03-04T05:06:07\.000Z/);
  });

  it('reports no access, an unknown version, an archived one and a bad id', async () => {
    const ctx = await context({ CIVITAI_TOKEN: TOKEN });
    const cases: Array<[string, RegExp]> = [
      ['104', /has no access to this model/],
      ['999', /^CivitAI has no model version 999$/],
      ['105', /archived/],
      ['abc', /"abc" is not a valid CivitAI model-version id/],
    ];
    for (const [id, message] of cases) {
      const err = await failure(resolveModel(spec(id), ctx));
      expect(err, id).toBeInstanceOf(UserError);
      expect(err.message, id).toMatch(message);
    }
  });

  it('turns 429 into a retried error, honouring Retry-After or waiting 30 s', async () => {
    const ctx = await context();
    civitai.rateLimit(1);
    const plain = await failure(resolveModel(spec('101'), ctx));
    expect(plain).toBeInstanceOf(TransientError);
    expect((plain as TransientError).retryAfterMs).toBe(30_000);

    civitai.rateLimit(1, 12);
    const told = await failure(resolveModel(spec('101'), ctx));
    expect((told as TransientError).retryAfterMs).toBe(12_000);

    expect((await resolveModel(spec('101'), ctx))[0]!.name).toBe('dreamy.safetensors');
  });

  it('refuses a JSON body answered in place of the model', async () => {
    const err = await failure(resolveModel(spec('108'), await context()));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/answered with JSON instead of the file/);
  });
});
