import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseCategory } from '../../src/organize/category.js';
import { UserError } from '../../src/lib/errors.js';
import { readSafetensorsHeader } from '../../src/organize/safetensors.js';
import { SAMPLE_TENSORS, writeSafetensors } from '../fixtures/safetensors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-category-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sample(kind: keyof typeof SAMPLE_TENSORS): Promise<string> {
  return writeSafetensors(path.join(dir, `${kind}.part`), SAMPLE_TENSORS[kind], { format: 'pt' });
}

describe('chooseCategory from the safetensors header', () => {
  it.each([
    ['checkpoint', 'checkpoints'],
    ['flux', 'diffusion_models'],
    ['vae', 'vae'],
    ['lora', 'loras'],
    ['loraPeft', 'loras'],
    ['loha', 'loras'],
    ['clip', 'text_encoders'],
    ['t5', 'text_encoders'],
    ['controlnet', 'controlnet'],
    ['controlnetDiffusers', 'controlnet'],
    ['embedding', 'embeddings'],
    ['embeddingSdxl', 'embeddings'],
    ['esrgan', 'upscale_models'],
    ['esrganNew', 'upscale_models'],
  ] as const)('files a %s under %s', async (kind, folder) => {
    expect(await chooseCategory({ file: await sample(kind), name: `${kind}.safetensors` })).toBe(folder);
  });

  it('files a diffusion model saved with ComfyUI\'s prefix but no VAE under diffusion_models', async () => {
    const file = await writeSafetensors(path.join(dir, 'prefixed.part'), ['model.diffusion_model.double_blocks.0.img_attn.qkv.weight']);
    expect(await chooseCategory({ file })).toBe('diffusion_models');
  });

  it('refuses a file whose tensors match nothing, telling the user to set a category', async () => {
    const file = await writeSafetensors(path.join(dir, 'odd.part'), ['something.weight']);
    const err = await chooseCategory({ file, name: 'odd.safetensors' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/cannot tell the folder of odd\.safetensors.*set a category/);
  });

  it.each(['model.ckpt', 'model.pt', 'model.gguf'])('refuses %s without a category', async (name) => {
    const file = path.join(dir, name);
    await writeFile(file, 'PK\x03\x04 not a safetensors file');
    await expect(chooseCategory({ file, name })).rejects.toThrow(new RegExp(`cannot tell the folder of ${name.replace('.', '\\.')}`));
  });

  it('refuses a file that is not safetensors whatever its name says', async () => {
    const file = path.join(dir, 'fake.part');
    await writeFile(file, Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]), Buffer.alloc(64)]));
    await expect(chooseCategory({ file, name: 'fake.safetensors' })).rejects.toThrow(/not a safetensors file/);
  });
});

describe('chooseCategory precedence', () => {
  it('takes the manifest category over everything, normalising aliases', async () => {
    const file = await sample('vae');
    expect(await chooseCategory({ specCategory: 'lora', sourceCategory: 'Checkpoint', file })).toBe('loras');
  });

  it("takes the source's folder when the manifest gives none", async () => {
    const file = await sample('vae');
    expect(await chooseCategory({ sourceCategory: 'loras', file })).toBe('loras');
    expect(await chooseCategory({ sourceCategory: 'embeddings', file })).toBe('embeddings');
  });

  it('reads the header when the source names no folder', async () => {
    expect(await chooseCategory({ file: await sample('vae') })).toBe('vae');
  });

  it('needs no header for a .ckpt with a category', async () => {
    const file = path.join(dir, 'given.ckpt');
    await writeFile(file, 'pickle');
    expect(await chooseCategory({ specCategory: 'checkpoints', file })).toBe('checkpoints');
  });
});

describe('readSafetensorsHeader', () => {
  it('reads names and metadata without reading the tensor data', async () => {
    const file = await writeSafetensors(path.join(dir, 'big.part'), { 'a.weight': { dtype: 'F32', shape: [1024, 1024] } }, { v: '1' });
    expect(await readSafetensorsHeader(file)).toEqual({ tensors: ['a.weight'], metadata: { v: '1' } });
  });

  it('refuses a header length over the 100 MB cap', async () => {
    const file = path.join(dir, 'huge.part');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(200n * 1024n * 1024n);
    await writeFile(file, Buffer.concat([prefix, Buffer.from('{}')]));
    await expect(readSafetensorsHeader(file)).rejects.toThrow(/not plausible/);
  });
});
