import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { allReady, comfyPids, comfyStarts, pidIn, sha256File, startUp, upEnv } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { eventually, isAlive, makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const SIZE = 12 * 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const PASSWORD = 'redis-embedded-pw';

/**
 * `phoenix up` with its own redis-server, killed with SIGKILL: without persistence it comes back
 * empty and the workers provision this start again from disk; with AOF jobs go on where they were;
 * a redis-server that cannot be started again makes Phoenix exit 1 with nothing left running.
 */
describe('phoenix up when its redis-server dies', () => {
  let cdn: CdnFixture;
  let hub: StaticServer;
  const small = randomBytes(300_000);
  const extra = randomBytes(200_000);

  beforeAll(async () => {
    cdn = await startCdnFixture({ files: { '/big.safetensors': SIZE, '/big2.safetensors': SIZE }, faults: { bytesPerSecond: 512 * 1024 } });
    hub = await startStaticServer({ '/m/small.safetensors': { body: small }, '/m/extra.safetensors': { body: extra } });
  });
  afterAll(async () => {
    await cdn.close();
    await hub.close();
  });

  /** A workspace, an environment, and a redis-server on PATH that refuses to start once `refuse` exists. */
  async function pod(bigPath: string, extraEnv: Record<string, string> = {}) {
    const ws = await makeWorkspace();
    const bin = path.join(ws.dir, 'bin');
    const refuse = path.join(ws.dir, 'refuse-redis');
    await mkdir(bin);
    await writeFile(
      path.join(bin, 'redis-server'),
      `#!/bin/sh\nif [ -e ${refuse} ]; then echo "redis-server: cannot start (test)" >&2; exit 1; fi\nexec /usr/bin/redis-server "$@"\n`,
    );
    await chmod(path.join(bin, 'redis-server'), 0o755);
    const env = await upEnv(ws.dir, PASSWORD, {
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      COMFYUI_WAIT_FOR: 'none',
      DOWNLOAD_CONNECTIONS: '4',
      PROVISION_URL: await writeManifest(
        `[models.checkpoints]\nbig = "${cdn.url(bigPath)}"\n[models.loras]\nsmall = "${hub.url('/m/small.safetensors')}"\n`,
      ),
      ...extraEnv,
    });
    return { ws, env, refuse };
  }

  async function killRedis(ws: Workspace): Promise<number> {
    const pid = await pidIn(ws.dir, 'redis-server.pid');
    process.kill(pid, 'SIGKILL');
    return pid;
  }

  it('restarts a redis-server that lost everything, provisions this start again from disk, and exits 1 when Redis cannot come back', { timeout: 150_000 }, async () => {
    const { ws, env, refuse } = await pod('/big.safetensors');
    const base = cdn.bytesServed;
    try {
      const up = startUp(env, PASSWORD);
      await up.until((s) => s.ready && s.models.some((m) => m.state === 'ready' && m.name === 'small.safetensors'), 60_000, 'ComfyUI and the small model');
      const added = await fetch(`http://127.0.0.1:${env.PHOENIX_PORT}/api/models`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'url', url: hub.url('/m/extra.safetensors'), category: 'vae' }),
      });
      expect(added.status).toBe(202);
      const before = await up.until(
        (s) => s.models.some((m) => m.name === 'extra.safetensors' && m.state === 'ready') && s.models.some((m) => m.state === 'downloading' && m.bytesDone > SIZE / 5),
        60_000,
        'the runtime model ready and a quarter of the big one',
      );
      const comfyPid = before.comfyui.pid;
      const hubServed = [...hub.served.values()].reduce((a, b) => a + b, 0);

      const servedAtKill = cdn.bytesServed;
      const missing = SIZE - (servedAtKill - base);
      // Killed mid-download, not after it: a good part of the big model was still to come.
      expect(missing).toBeGreaterThan(SIZE / 5);
      const killedAt = Date.now();
      const oldRedis = await killRedis(ws);
      const back = await up.until(allReady(3), 90_000, 'every model ready again after Redis came back empty');
      const recoverySeconds = (Date.now() - killedAt) / 1000;

      expect(up.output()).toMatch(/"msg":"redis-server died; restarting it"/);
      expect(up.output()).toMatch(/Redis no longer holds this start's jobs/);
      expect(await pidIn(ws.dir, 'redis-server.pid')).not.toBe(oldRedis);
      const expected: Record<string, string> = { 'big.safetensors': cdn.sha256('/big.safetensors'), 'small.safetensors': sha(small), 'extra.safetensors': sha(extra) };
      for (const m of back.models) expect(await sha256File(m.path!), m.name).toBe(expected[m.name]);
      // What was on disk stayed: the big model resumed (fetched again at most 1.35 × what was
      // missing), the verified ones were not fetched at all, ComfyUI was neither restarted nor doubled.
      const fetchedAgain = cdn.bytesServed - servedAtKill;
      expect(fetchedAgain).toBeLessThanOrEqual(1.35 * missing);
      expect([...hub.served.values()].reduce((a, b) => a + b, 0)).toBe(hubServed);
      expect(back.comfyui).toMatchObject({ state: 'running', pid: comfyPid, restarts: 0 });
      expect(await comfyPids(ws.comfyDir)).toEqual([comfyPid]);
      expect(await comfyStarts(ws.comfyDir)).toBe(1);
      console.log(`redis-server killed (no persistence): ready again in ${recoverySeconds.toFixed(1)} s; big model fetched again ${fetchedAgain} of ${missing} missing bytes`);

      // A redis-server that cannot start again: a bounded number of logged restarts, then exit 1.
      await writeFile(refuse, '');
      const gaveUpFrom = Date.now();
      await killRedis(ws);
      const result = await up.child;
      expect(result.exitCode, up.output().slice(-3000)).toBe(1);
      // Five restarts in a row (the first kill's counts: it was up for less than a minute).
      expect(up.output().match(/"msg":"redis-server died; restarting it"/g)).toHaveLength(5);
      expect(up.output()).toMatch(/"restarts":5,"msg":"redis-server keeps dying; giving up on it"/);
      expect(up.output()).toMatch(/"msg":"Phoenix cannot run without Redis: stopping everything and exiting with code 1"/);
      expect(isAlive(comfyPid!)).toBe(false);
      expect(await comfyPids(ws.comfyDir)).toEqual([]);
      console.log(`redis-server that cannot restart: phoenix up exited 1 after ${((Date.now() - gaveUpFrom) / 1000).toFixed(1)} s`);
    } finally {
      await ws.cleanup();
    }
  });

  it('with AOF, a restarted redis-server keeps the jobs: the download goes on, nothing runs twice', { timeout: 120_000 }, async () => {
    const { ws, env } = await pod('/big2.safetensors');
    const volume = path.join(ws.dir, 'volume');
    try {
      const base = cdn.bytesServed;
      const up = startUp({ ...env, PERSISTENT_STORAGE: volume }, PASSWORD);
      await up.until((s) => s.ready && s.models.some((m) => m.state === 'downloading' && m.bytesDone > SIZE / 4), 60_000, 'a quarter of the big model');
      const servedBefore = cdn.bytesServed;
      const missing = SIZE - (servedBefore - base);
      expect(missing).toBeGreaterThan(SIZE / 5);
      const killedAt = Date.now();
      await killRedis(ws);
      // Redis is back with its data: the jobs are there at once, not enqueued again.
      await eventually(async () => (await up.status().catch(() => undefined))?.models.length === 2, 30_000, '/status with the jobs again');
      const done = await up.until(allReady(2), 90_000, 'every model ready');
      const recoverySeconds = (Date.now() - killedAt) / 1000;
      expect(up.output()).toMatch(/"msg":"redis-server died; restarting it"/);
      expect(up.output()).not.toMatch(/Redis no longer holds this start's jobs|its result is dropped/);
      const big = done.models.find((m) => m.name === 'big2.safetensors')!;
      expect(await sha256File(big.path!)).toBe(cdn.sha256('/big2.safetensors'));
      expect(cdn.bytesServed - servedBefore).toBeLessThanOrEqual(1.35 * missing);
      expect(await comfyStarts(ws.comfyDir)).toBe(1);
      expect(await comfyPids(ws.comfyDir)).toHaveLength(1);
      console.log(`redis-server killed (AOF): ready again in ${recoverySeconds.toFixed(1)} s; fetched again ${cdn.bytesServed - servedBefore} of ${missing} missing bytes`);
      expect(await up.stop()).toBe(0);
    } finally {
      await ws.cleanup();
    }
  });
});
