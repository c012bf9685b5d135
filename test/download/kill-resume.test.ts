import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { downloadFile, type DownloadFileOptions } from '../../src/download/engine.js';
import { readState } from '../../src/download/state.js';
import { type CdnFixture, startCdnFixture } from '../fixtures/cdn-server.js';

const MB = 1024 * 1024;
const SIZE = 16 * MB;
const child = fileURLToPath(new URL('./download-child.ts', import.meta.url));
let cdn: CdnFixture;
let dir: string;

beforeAll(async () => {
  cdn = await startCdnFixture({ files: { '/big.safetensors': SIZE }, faults: { bytesPerSecond: 1.5 * MB } });
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-kill-'));
});
afterAll(async () => {
  await cdn.close();
  await rm(dir, { recursive: true, force: true });
});

it('continues after the process is killed mid-file, fetching little twice', async () => {
  const options: DownloadFileOptions = {
    request: { url: cdn.url('/big.safetensors'), headers: {} },
    partPath: path.join(dir, '.phoenix-tmp', 'm--big.safetensors.part'),
    expectedBytes: SIZE,
    expectedSha256: cdn.sha256('/big.safetensors'),
    connections: 4,
    stallTimeoutMs: 10_000,
  };
  const proc = spawn(process.execPath, ['--import', 'tsx', child, JSON.stringify(options)], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
  let done = 0;
  while (done < SIZE * 0.4) {
    await sleep(50);
    done = ((await readState(options.partPath))?.done ?? []).reduce((sum, [start, end]) => sum + end - start, 0);
    expect(proc.exitCode).toBeNull();
  }
  proc.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');

  cdn.setFaults({});
  const result = await downloadFile(options);
  expect(result.bytes).toBe(SIZE);
  expect(result.sha256).toBe(options.expectedSha256);
  expect(result.resumedBytes).toBeGreaterThanOrEqual(done);
  expect(cdn.bytesServed).toBeLessThan(1.35 * SIZE);
});
