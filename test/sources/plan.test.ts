import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelId } from '../../src/config/model-spec.js';
import { planModels } from '../../src/commands/plan.js';
import { startCivitaiFixture, type CivitaiFixture } from '../fixtures/civitai-server.js';
import { fakeSafetensors, sha256Hex } from '../fixtures/http-server.js';
import { startHuggingfaceFixture, type HuggingfaceFixture } from '../fixtures/huggingface-server.js';
import { configInTempWorkspace } from '../fixtures/source-context.js';
import { startStorageFixture, type StorageFixture } from '../fixtures/storage-server.js';

const lora = fakeSafetensors('lora', 3000);
const vae = fakeSafetensors('vae', 2000);

let storage: StorageFixture;
let civitai: CivitaiFixture;
let hub: HuggingfaceFixture;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  storage = await startStorageFixture();
  civitai = await startCivitaiFixture({
    storage,
    models: [{ versionId: 58390, type: 'LORA', files: [{ id: 1, name: 'add_detail.safetensors', content: lora, primary: true }] }],
  });
  hub = await startHuggingfaceFixture({ cdn: storage, repos: [{ id: 'acme/vae', files: [{ path: 'sdxl_vae.safetensors', content: vae }] }] });
});

afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await civitai?.close();
  await hub?.close();
  await storage?.close();
});

describe('planModels', () => {
  it('resolves every model without downloading, reporting failures beside successes', async () => {
    const { config, cleanup } = await configInTempWorkspace({
      CIVITAI_BASE_URL: civitai.url,
      HF_ENDPOINT: hub.url,
      CIVITAI_MODELS: '58390,999',
      CIVITAI_CHECKPOINTS_TO_DOWNLOAD: '58390',
      HUGGINGFACE_MODELS: 'acme/vae/sdxl_vae.safetensors',
    });
    cleanups.push(cleanup);
    const storageSeen = storage.requests.length;

    const plan = await planModels(config, pino({ level: 'silent' }));

    expect(plan).toEqual([
      {
        origin: 'CIVITAI_MODELS[0]',
        id: modelId(config.models[0]!.spec),
        source: 'civitai',
        files: [{ name: 'add_detail.safetensors', bytes: lora.length, category: 'loras', sha256: sha256Hex(lora) }],
      },
      { origin: 'CIVITAI_MODELS[1]', id: modelId(config.models[1]!.spec), source: 'civitai', files: [], error: 'CivitAI has no model version 999' },
      {
        origin: 'CIVITAI_CHECKPOINTS_TO_DOWNLOAD[0]',
        id: modelId(config.models[2]!.spec),
        source: 'civitai',
        // The forced folder wins over the API's type.
        files: [{ name: 'add_detail.safetensors', bytes: lora.length, category: 'checkpoints', sha256: sha256Hex(lora) }],
      },
      {
        origin: 'HUGGINGFACE_MODELS[0]',
        id: modelId(config.models[3]!.spec),
        source: 'huggingface',
        files: [{ name: 'sdxl_vae.safetensors', bytes: vae.length, category: undefined, sha256: sha256Hex(vae) }],
      },
    ]);
    const toStorage = storage.requests.slice(storageSeen);
    expect(toStorage.length).toBeGreaterThan(0);
    expect(toStorage.every((r) => r.headers.range === 'bytes=0-0')).toBe(true);
  });

  it('returns an empty plan when nothing is configured', async () => {
    const { config, cleanup } = await configInTempWorkspace({});
    cleanups.push(cleanup);
    expect(await planModels(config, pino({ level: 'silent' }))).toEqual([]);
  });
});
