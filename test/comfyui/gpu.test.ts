import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectGpus } from '../../src/comfyui/gpu.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-gpu-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A bin folder holding an nvidia-smi that logs its arguments and runs `body`. */
async function fakeSmi(name: string, body: string): Promise<{ env: Record<string, string>; argsLog: string }> {
  const bin = path.join(dir, name);
  const argsLog = path.join(bin, 'args.log');
  await mkdir(bin, { recursive: true });
  await writeFile(path.join(bin, 'nvidia-smi'), `#!/bin/sh\necho "$@" >> "${argsLog}"\n${body}\n`);
  await chmod(path.join(bin, 'nvidia-smi'), 0o755);
  return { env: { PATH: bin }, argsLog };
}

describe('detectGpus', () => {
  it('reads name, memory and compute capability of each GPU', async () => {
    const { env, argsLog } = await fakeSmi('two', `printf 'NVIDIA H100 80GB HBM3, 81559, 9.0\\nNVIDIA GeForce RTX 3090, 24576, 8.6\\n'`);
    expect(await detectGpus({ env })).toEqual([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, computeCapability: 9.0 },
      { index: 1, name: 'NVIDIA GeForce RTX 3090', memoryMiB: 24576, computeCapability: 8.6 },
    ]);
    expect((await readFile(argsLog, 'utf8')).trim()).toBe('--query-gpu=name,memory.total,compute_cap --format=csv,noheader,nounits');
  });

  it('asks an old driver again without compute_cap', async () => {
    const { env } = await fakeSmi(
      'old',
      `case "$1" in *compute_cap*) echo 'Field "compute_cap" is not a valid field to query.' >&2; exit 2;; esac\necho 'Tesla T4, 15360'`,
    );
    expect(await detectGpus({ env })).toEqual([{ index: 0, name: 'Tesla T4', memoryMiB: 15360, computeCapability: undefined }]);
  });

  it('finds no GPU when nvidia-smi is not on PATH', async () => {
    expect(await detectGpus({ env: { PATH: path.join(dir, 'empty') } })).toEqual([]);
  });

  it('finds no GPU when nvidia-smi cannot reach a driver', async () => {
    const { env } = await fakeSmi('nodriver', `echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." ; exit 9`);
    expect(await detectGpus({ env })).toEqual([]);
  });
});
