import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { up, type Stack } from '../../src/runtime/up.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { comfyPorts, eventually, freePort, makeWorkspace, silentLog, testConfig, writeManifest, type Workspace } from '../helpers.js';

const SIZE = 6 * 1024 * 1024;
const PASSWORD = 'volume-board-password';
const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };

/**
 * Two pods on one network volume (the same PERSISTENT_STORAGE) and one Redis, without a mirror:
 * one downloads each model, the other waits for it and uses the published file.
 */
describe('pods sharing a network volume', () => {
  let redis: TestRedis;
  let cdn: CdnFixture;
  let volume: string;
  const pods: { ws: Workspace; stack: Stack; port: number }[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    cdn = await startCdnFixture({ files: { '/shared.safetensors': SIZE }, faults: { bytesPerSecond: 1024 * 1024 } });
    volume = await mkdtemp(path.join(os.tmpdir(), 'phoenix-volume-'));
  });
  afterAll(async () => {
    for (const p of pods) await p.stack.stop();
    for (const p of pods) await p.ws.cleanup();
    await cdn.close();
    await redis.stop();
    await rm(volume, { recursive: true, force: true });
  });

  it('downloads each model once for both pods', { timeout: 90_000 }, async () => {
    const manifest = await writeManifest(`[models.checkpoints]\nshared = "${cdn.url('/shared.safetensors')}"\n`);
    await Promise.all(
      ['vol-a', 'vol-b'].map(async (id) => {
        const ws = await makeWorkspace();
        const port = await freePort();
        const config = await testConfig({
          WORKSPACE: ws.dir,
          PHOENIX_PORT: String(port),
          ...(await comfyPorts()),
          PHOENIX_PASSWORD: PASSWORD,
          PHOENIX_POD_ID: id,
          REDIS_URL: redis.url,
          PERSISTENT_STORAGE: volume,
          DOWNLOAD_CONNECTIONS: '4',
          PROVISION_URL: manifest,
        });
        pods.push({ ws, port, stack: await up(config, silentLog) });
      }),
    );
    const status = async (port: number) => (await fetch(`http://127.0.0.1:${port}/status`, { headers: auth })).json() as Promise<PodStatus>;
    const waiting = await eventually(async () => {
      for (const p of pods) {
        const model = (await status(p.port)).models[0];
        if (model?.waitingFor) return model;
      }
      return undefined;
    }, 30_000, 'one pod waiting for the other');
    expect(['vol-a', 'vol-b']).toContain(waiting.waitingFor);

    const last = new Map<number, PodStatus>();
    const ready = await Promise.all(
      pods.map((p) => eventually(async () => {
        const s = await status(p.port);
        last.set(p.port, s);
        return s.ready && s.models[0]?.state === 'ready' ? s : undefined;
      }, 60_000, 'both pods ready').catch((err: Error) => {
        // What each pod last said: which step it was stuck on.
        throw new Error(`${err.message}; last /status: ${JSON.stringify([...last.values()].map((s) => ({ ready: s.ready, comfyui: s.comfyui, models: s.models, queues: s.queues })))}`);
      })),
    );
    expect(ready.map((s) => s.models[0]!.path)).toEqual([path.join(volume, 'models/checkpoints/shared.safetensors'), path.join(volume, 'models/checkpoints/shared.safetensors')]);
    expect(createHash('sha256').update(await readFile(ready[0]!.models[0]!.path!)).digest('hex')).toBe(cdn.sha256('/shared.safetensors'));
    const probes = cdn.requests.filter((r) => r.range === 'bytes=0-0').length;
    expect(cdn.bytesServed - probes).toBe(SIZE);
  });
});
