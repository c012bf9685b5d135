import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MODEL_FOLDERS } from '../../src/config/folders.js';
import { extraModelPathsArgs, writeExtraModelPaths } from '../../src/comfyui/extra-model-paths.js';
import { comfyFolderPaths } from './comfy-paths.js';

let dir: string;
let comfy: string;
const storage = '/workspace/my storage: "models"';
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-extra-'));
  comfy = path.join(dir, 'ComfyUI');
  await mkdir(comfy);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeExtraModelPaths', () => {
  it('writes nothing without persistent storage', async () => {
    expect(await writeExtraModelPaths({ persistentStorage: undefined, comfyui: { dir: comfy } })).toBeUndefined();
    await expect(stat(path.join(comfy, 'extra_model_paths.yaml'))).rejects.toThrow();
  });

  it('writes a phoenix section beside main.py that ComfyUI reads as every model folder on the storage', async () => {
    const written = await writeExtraModelPaths({ persistentStorage: storage, comfyui: { dir: comfy } });
    expect(written).toBe(path.join(comfy, 'extra_model_paths.yaml'));
    expect(extraModelPathsArgs(written)).toEqual([]);
    const text = await readFile(written!, 'utf8');
    expect(text).toMatch(/^# Written by Phoenix/);
    expect(text).toContain('\nphoenix:\n');
    expect(text).toContain('  is_default: true\n');
    expect(text).toContain('  text_encoders: |\n    models/text_encoders\n    models/clip\n');
    expect(text).toContain('  diffusion_models: |\n    models/diffusion_models\n    models/unet\n');

    const folders = await comfyFolderPaths(written!);
    for (const folder of MODEL_FOLDERS) expect(folders[folder]?.[0]).toBe(path.join(storage, 'models', folder));
    expect(folders.text_encoders).toEqual([path.join(storage, 'models/text_encoders'), path.join(storage, 'models/clip')]);
    expect(folders.diffusion_models).toEqual([path.join(storage, 'models/diffusion_models'), path.join(storage, 'models/unet')]);
  });

  it('rewrites its own file on the next start', async () => {
    await writeExtraModelPaths({ persistentStorage: '/old', comfyui: { dir: comfy } });
    const written = await writeExtraModelPaths({ persistentStorage: '/new', comfyui: { dir: comfy } });
    expect(written).toBe(path.join(comfy, 'extra_model_paths.yaml'));
    expect(await readFile(written!, 'utf8')).toContain('base_path: "/new"');
  });

  it('leaves a user\'s own extra_model_paths.yaml alone and writes a separate file passed by flag', async () => {
    const own = 'comfyui:\n  base_path: /mine\n  checkpoints: models/checkpoints\n';
    await writeFile(path.join(comfy, 'extra_model_paths.yaml'), own);
    const written = await writeExtraModelPaths({ persistentStorage: '/data', comfyui: { dir: comfy } });
    expect(written).toBe(path.join(comfy, 'extra_model_paths.phoenix.yaml'));
    expect(extraModelPathsArgs(written)).toEqual(['--extra-model-paths-config', written]);
    expect(await readFile(path.join(comfy, 'extra_model_paths.yaml'), 'utf8')).toBe(own);
    const folders = await comfyFolderPaths(path.join(comfy, 'extra_model_paths.yaml'), written!);
    if (folders) expect(folders.checkpoints).toEqual(['/mine/models/checkpoints', '/data/models/checkpoints']);
  });

  it('removes its files once persistence is turned off, keeping the user\'s', async () => {
    await writeExtraModelPaths({ persistentStorage: '/data', comfyui: { dir: comfy } });
    expect(await writeExtraModelPaths({ persistentStorage: undefined, comfyui: { dir: comfy } })).toBeUndefined();
    await expect(stat(path.join(comfy, 'extra_model_paths.yaml'))).rejects.toThrow();

    await writeFile(path.join(comfy, 'extra_model_paths.yaml'), 'mine: {}\n');
    await writeExtraModelPaths({ persistentStorage: '/data', comfyui: { dir: comfy } });
    await writeExtraModelPaths({ persistentStorage: undefined, comfyui: { dir: comfy } });
    expect(await readFile(path.join(comfy, 'extra_model_paths.yaml'), 'utf8')).toBe('mine: {}\n');
    await expect(stat(path.join(comfy, 'extra_model_paths.phoenix.yaml'))).rejects.toThrow();
  });
});
