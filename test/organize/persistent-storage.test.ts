import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeExtraModelPaths } from '../../src/comfyui/extra-model-paths.js';
import * as hash from '../../src/lib/hash.js';
import { chooseCategory } from '../../src/organize/category.js';
import { publishFile } from '../../src/organize/publish.js';
import { VerifiedRecord } from '../../src/organize/record.js';
import { SAMPLE_TENSORS, writeSafetensors } from '../fixtures/safetensors.js';
import { comfyFolderPaths } from '../comfyui/comfy-paths.js';
import { downloaded, keyFile } from './helpers.js';

/**
 * A first container publishes onto a persistent volume; a brand-new container (fresh ComfyUI
 * checkout, fresh process state) on the same volume finds everything verified and visible.
 */
describe('models on persistent storage', () => {
  let dir: string;
  let storage: string;
  let modelsRoot: string;
  const published: Record<string, string> = {};

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'phoenix-volume-'));
    storage = path.join(dir, 'volume', 'storage');
    modelsRoot = path.join(storage, 'models');
    const firstComfy = path.join(dir, 'container-1', 'ComfyUI');
    await mkdir(firstComfy, { recursive: true });

    const record = new VerifiedRecord(modelsRoot, keyFile(modelsRoot));
    for (const kind of ['lora', 'vae', 'flux'] as const) {
      const modelId = `model-${kind}`;
      const name = `${kind}.safetensors`;
      const sample = await writeSafetensors(path.join(dir, `${kind}.src`), SAMPLE_TENSORS[kind]);
      const file = await downloaded(modelsRoot, modelId, name, await readFile(sample));
      const category = await chooseCategory({ file: file.tempPath!, name });
      published[modelId] = await publishFile({ modelId, file, category, modelsRoot, overwrite: false, record });
    }
    await writeExtraModelPaths({ persistentStorage: storage, comfyui: { dir: firstComfy } });
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('published each file into its folder on the volume', () => {
    expect(published).toEqual({
      'model-lora': path.join(modelsRoot, 'loras', 'lora.safetensors'),
      'model-vae': path.join(modelsRoot, 'vae', 'vae.safetensors'),
      'model-flux': path.join(modelsRoot, 'diffusion_models', 'flux.safetensors'),
    });
  });

  it('a new container trusts the record on the volume without re-hashing', async () => {
    const spy = vi.spyOn(hash, 'sha256File');
    const record = new VerifiedRecord(modelsRoot, keyFile(modelsRoot));
    for (const [modelId, file] of Object.entries(published)) {
      const entries = await record.validEntries(modelId);
      expect(entries?.map((e) => record.absolute(e))).toEqual([file]);
    }
    expect(spy).not.toHaveBeenCalled();
  });

  it('a new container\'s ComfyUI finds the volume\'s models through extra_model_paths.yaml', async () => {
    const freshComfy = path.join(dir, 'container-2', 'ComfyUI');
    await mkdir(freshComfy, { recursive: true });
    const written = await writeExtraModelPaths({ persistentStorage: storage, comfyui: { dir: freshComfy } });
    expect(written).toBe(path.join(freshComfy, 'extra_model_paths.yaml'));
    const text = await readFile(written!, 'utf8');
    expect(text).toContain(`base_path: ${JSON.stringify(storage)}`);

    const folders = await comfyFolderPaths(written!);
    for (const file of Object.values(published)) {
      expect(folders[path.basename(path.dirname(file))]).toContain(path.dirname(file));
    }
  });
});
