import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { upEnv } from '../fixtures/pod.js';
import { REPO_ROOT, eventually, isAlive, makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const SIZE = 12 * 1024 * 1024;

/** `phoenix up` killed with SIGKILL mid-download: the next start cleans up after it and resumes. */
describe('a crashed pod', () => {
  let cdn: CdnFixture;
  let ws: Workspace;
  let env: Record<string, string>;
  const auth = { authorization: `Basic ${Buffer.from('admin:crash-password').toString('base64')}` };

  beforeAll(async () => {
    cdn = await startCdnFixture({ files: { '/big.safetensors': SIZE }, faults: { bytesPerSecond: 1024 * 1024 } });
    ws = await makeWorkspace();
    env = await upEnv(ws.dir, 'crash-password', {
      COMFYUI_WAIT_FOR: 'none',
      DOWNLOAD_CONNECTIONS: '4',
      PROVISION_URL: await writeManifest(`[models.checkpoints]\nbig = "${cdn.url('/big.safetensors')}"\n`),
    });
  });
  afterAll(async () => {
    await cdn.close();
    await ws.cleanup();
  });

  const start = (): ResultPromise =>
    execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), 'up'], { cwd: REPO_ROOT, env, extendEnv: false, reject: false });
  const status = async (): Promise<PodStatus> =>
    (await fetch(`http://127.0.0.1:${env.PHOENIX_PORT}/status`, { headers: auth })).json() as Promise<PodStatus>;
  const pidIn = async (name: string) => Number((await readFile(path.join(ws.dir, '.phoenix', name), 'utf8')).trim());

  it('stops what the dead process left behind and resumes the download', { timeout: 120_000 }, async () => {
    const first = start();
    await eventually(async () => {
      const s = await status();
      const model = s.models[0];
      return s.ready && model?.state === 'downloading' && model.bytesDone > SIZE / 4 ? s : undefined;
    }, 60_000, 'ComfyUI up and a quarter of the model downloaded');
    const orphanRedis = await pidIn('redis-server.pid');
    const orphanComfy = await pidIn('comfyui.pid');

    first.kill('SIGKILL');
    await first;
    expect(isAlive(orphanRedis) && isAlive(orphanComfy)).toBe(true);

    const second = start();
    const done = await eventually(async () => {
      const s = await status().catch(() => undefined);
      return s?.ready && s.models[0]?.state === 'ready' ? s : undefined;
    }, 90_000, 'the model after the restart');
    expect(isAlive(orphanRedis)).toBe(false);
    expect(isAlive(orphanComfy)).toBe(false);
    expect(done.comfyui.pid).not.toBe(orphanComfy);
    const bytes = await readFile(done.models[0]!.path!);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(cdn.sha256('/big.safetensors'));
    // Resumed, not restarted: the CDN sent well under twice the file.
    expect(cdn.bytesServed).toBeLessThan(1.35 * SIZE);

    second.kill('SIGTERM');
    expect((await second).exitCode).toBe(0);
  });
});
