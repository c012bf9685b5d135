import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASIC_FLAGS, chooseComfyFlags, supportedComfyFlags } from '../../src/comfyui/flags.js';
import type { Gpu } from '../../src/comfyui/gpu.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-flags-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The environment the probes run in (the pod's, secrets removed). */
const PROBE_ENV = { PATH: process.env.PATH ?? '' };

/** A ComfyUI Python in which exactly `modules` import (torch's CUDA check included as "torch.cuda"). */
async function pythonWith(...modules: string[]): Promise<string> {
  const file = path.join(dir, `python-${modules.join('-') || 'bare'}`);
  const cases = modules.map((m) => `  *"import ${m}"*) exit 0;;`).join('\n');
  const torch = modules.includes('torch.cuda') ? `  *"torch.cuda.is_available"*) exit 0;;\n` : '';
  await writeFile(file, `#!/bin/sh\ncase "$2" in\n${torch}${cases}\nesac\nexit 1\n`);
  await chmod(file, 0o755);
  return file;
}

const h100: Gpu = { index: 0, name: 'NVIDIA H100', memoryMiB: 81559, computeCapability: 9.0 };
const t4: Gpu = { index: 0, name: 'Tesla T4', memoryMiB: 15360, computeCapability: 7.5 };

describe('chooseComfyFlags', () => {
  it('runs on the CPU without a GPU, COMFY_ARGS last', async () => {
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [], python: await pythonWith(), comfyArgs: ['--preview-method', 'auto'] })).toEqual([
      '--cpu',
      '--preview-method',
      'auto',
    ]);
  });

  it('does not force --cpu where torch sees a GPU nvidia-smi did not show', async () => {
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [], python: await pythonWith('torch.cuda'), comfyArgs: [] })).toEqual([
      '--use-pytorch-cross-attention',
    ]);
  });

  it('picks bf16 and sage attention on an H100 that has sageattention', async () => {
    const python = await pythonWith('sageattention', 'flash_attn');
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100], python, comfyArgs: ['--fast'] })).toEqual(['--bf16-unet', '--use-sage-attention', '--fast']);
  });

  it('falls back to flash attention, then to PyTorch attention', async () => {
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100], python: await pythonWith('flash_attn'), comfyArgs: [] })).toEqual([
      '--bf16-unet',
      '--use-flash-attention',
    ]);
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100], python: await pythonWith(), comfyArgs: [] })).toEqual([
      '--bf16-unet',
      '--use-pytorch-cross-attention',
    ]);
  });

  it('leaves bf16 out below compute capability 8.0, or when any GPU is older or unknown', async () => {
    const python = await pythonWith();
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [t4], python, comfyArgs: [] })).toEqual(['--use-pytorch-cross-attention']);
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100, { ...t4, index: 1 }], python, comfyArgs: [] })).not.toContain('--bf16-unet');
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [{ ...h100, computeCapability: undefined }], python, comfyArgs: [] })).not.toContain('--bf16-unet');
  });

  it('never contradicts a choice made in COMFY_ARGS (ComfyUI would exit 2)', async () => {
    const python = await pythonWith('sageattention');
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100], python, comfyArgs: ['--fp8_e4m3fn-unet', '--use-split-cross-attention'] })).toEqual([
      '--fp8_e4m3fn-unet',
      '--use-split-cross-attention',
    ]);
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [], python: await pythonWith(), comfyArgs: ['--lowvram'] })).toEqual(['--lowvram']);
  });

  it('passes only the flags the installed ComfyUI accepts', async () => {
    const python = await pythonWith('sageattention');
    const older = new Set(['--listen', '--port', '--cpu', '--bf16-unet', '--use-pytorch-cross-attention']);
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100], python, comfyArgs: [], supportedFlags: older })).toEqual([
      '--bf16-unet',
      '--use-pytorch-cross-attention',
    ]);
    expect(await chooseComfyFlags({ env: PROBE_ENV, gpus: [h100], python, comfyArgs: [], supportedFlags: BASIC_FLAGS })).toEqual([]);
  });
});

describe('supportedComfyFlags', () => {
  it('reads every long option declared in comfy/cli_args.py', async () => {
    const comfy = path.join(dir, 'ComfyUI');
    await mkdir(path.join(comfy, 'comfy'), { recursive: true });
    await writeFile(
      path.join(comfy, 'comfy', 'cli_args.py'),
      [
        'parser = argparse.ArgumentParser()',
        'parser.add_argument("--listen", type=str, default="127.0.0.1", nargs="?", const="0.0.0.0,::", help="IP (e.g. --not-a-flag)")',
        "parser.add_argument('--port', type=int, default=8188)",
        'attn_group = parser.add_mutually_exclusive_group()',
        'attn_group.add_argument("--use-sage-attention", action="store_true", help="Use sage attention.")',
        'fpunet_group.add_argument("--fp8_e4m3fn-unet", action="store_true")',
        'parser.add_argument("-v", "--verbose")',
        'parser.add_argument(',
        '    "--front-end-version",',
        '    type=str,',
        ')',
      ].join('\n'),
    );
    expect([...(await supportedComfyFlags(comfy))].sort()).toEqual([
      '--fp8_e4m3fn-unet',
      '--front-end-version',
      '--listen',
      '--port',
      '--use-sage-attention',
      '--verbose',
    ]);
  });

  it('knows only --listen, --port and --cpu without that file', async () => {
    expect([...(await supportedComfyFlags(path.join(dir, 'nowhere')))].sort()).toEqual(['--cpu', '--listen', '--port']);
  });
});

describe('--disable-api-nodes (privacy)', () => {
  it('is passed when asked for and the installed ComfyUI declares it, never twice', async () => {
    const python = await pythonWith();
    const supportedFlags = new Set(['--listen', '--port', '--cpu', '--disable-api-nodes']);
    const base = { env: PROBE_ENV, gpus: [], python, supportedFlags };
    expect(await chooseComfyFlags({ ...base, comfyArgs: [], disableApiNodes: true })).toEqual(['--disable-api-nodes', '--cpu']);
    expect(await chooseComfyFlags({ ...base, comfyArgs: [], disableApiNodes: false })).toEqual(['--cpu']);
    expect(await chooseComfyFlags({ ...base, comfyArgs: ['--disable-api-nodes'], disableApiNodes: true })).toEqual(['--cpu', '--disable-api-nodes']);
  });

  it('is left out where ComfyUI does not know it (it would exit 2)', async () => {
    const flags = await chooseComfyFlags({ env: PROBE_ENV, gpus: [], python: await pythonWith(), comfyArgs: [], supportedFlags: BASIC_FLAGS, disableApiNodes: true });
    expect(flags).toEqual(['--cpu']);
  });
});
