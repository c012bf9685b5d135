import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisServerArgs, socketPath } from '../../src/runtime/redis.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { allReady, comfyPids, comfyStarts, sha256File, startUp, upEnv } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { eventually, makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const SIZE = 12 * 1024 * 1024;
const PASSWORD = 'redis-external-pw';

/**
 * REDIS_URL: a Redis that Phoenix does not own, killed with SIGKILL and brought back by "someone
 * else" — first with its AOF (jobs go on), then as a brand-new empty Redis (the workers provision
 * this start again from disk). Meanwhile the board answers 503 with the reason.
 */
describe('phoenix up on an external Redis that restarts', () => {
  let cdn: CdnFixture;
  let hub: StaticServer;
  let ws: Workspace;
  let redisDir: string;
  let redis: ResultPromise | undefined;
  const small = randomBytes(300_000);

  beforeAll(async () => {
    cdn = await startCdnFixture({ files: { '/big.safetensors': SIZE }, faults: { bytesPerSecond: 512 * 1024 } });
    hub = await startStaticServer({ '/m/small.safetensors': { body: small } });
    ws = await makeWorkspace();
    redisDir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-external-redis-'));
  });
  afterAll(async () => {
    redis?.kill('SIGKILL');
    await cdn.close();
    await hub.close();
    await ws.cleanup();
    await rm(redisDir, { recursive: true, force: true });
  });

  async function startRedis(aof: boolean): Promise<void> {
    redis = execa('redis-server', redisServerArgs(redisDir, aof), { reject: false });
    await eventually(async () => (await execa('redis-cli', ['-s', socketPath(redisDir), 'ping'], { reject: false })).stdout === 'PONG', 10_000, 'redis-server');
  }

  it('goes on with the jobs a Redis kept in its AOF, and provisions again from disk into an empty one', { timeout: 150_000 }, async () => {
    await startRedis(true);
    const env = await upEnv(ws.dir, PASSWORD, {
      REDIS_URL: `unix://${socketPath(redisDir)}`,
      COMFYUI_WAIT_FOR: 'none',
      DOWNLOAD_CONNECTIONS: '4',
      PROVISION_URL: await writeManifest(
        `[models.checkpoints]\nbig = "${cdn.url('/big.safetensors')}"\n[models.loras]\nsmall = "${hub.url('/m/small.safetensors')}"\n`,
      ),
    });
    const up = startUp(env, PASSWORD);
    try {
      const before = await up.until((s) => s.ready && s.models.some((m) => m.state === 'downloading' && m.bytesDone > SIZE / 4), 60_000, 'a quarter of the big model');
      const comfyPid = before.comfyui.pid;

      // Killed with its AOF kept; while it is away the board says why, at once.
      const servedAtKill = cdn.bytesServed;
      expect(SIZE - servedAtKill).toBeGreaterThan(SIZE / 5);
      const logFrom = up.output().length;
      const killedAt = Date.now();
      redis!.kill('SIGKILL');
      await redis;
      const away = await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${env.PHOENIX_PORT}/status`, {
          headers: { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` },
        });
        return res.status === 503 ? ((await res.json()) as { problems: string[] }) : undefined;
      }, 10_000, 'a 503 while Redis is away');
      expect(away.problems[0]).toMatch(/^Redis at .*redis\.sock is unavailable/);
      // Away for a few seconds: reconnect attempts go on all along, the log says it once.
      await new Promise((r) => setTimeout(r, 3000));
      const errors = up
        .output()
        .slice(logFrom)
        .split('\n')
        .filter((l) => /"level":(50|60)/.test(l))
        .map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(errors).toEqual(['lost the connection to Redis; reconnecting']);
      await startRedis(true);
      const backAt = Date.now();
      const done = await up.until(allReady(2), 90_000, 'every model ready after Redis came back with its data');
      console.log(
        `external Redis killed, away ${((backAt - killedAt) / 1000).toFixed(1)} s, back with its AOF: ready ${((Date.now() - backAt) / 1000).toFixed(1)} s later; ` +
          `big model fetched again ${cdn.bytesServed - servedAtKill} of ${SIZE - servedAtKill} missing bytes`,
      );
      expect(cdn.bytesServed - servedAtKill).toBeLessThanOrEqual(1.35 * (SIZE - servedAtKill));
      expect(up.output()).not.toMatch(/Redis no longer holds this start's jobs|its result is dropped/);
      const expected: Record<string, string> = {
        'big.safetensors': cdn.sha256('/big.safetensors'),
        'small.safetensors': createHash('sha256').update(small).digest('hex'),
      };
      for (const m of done.models) expect(await sha256File(m.path!), m.name).toBe(expected[m.name]);

      // A new, empty Redis at the same address: everything is found on disk, nothing fetched.
      const served = { cdn: cdn.bytesServed, hub: [...hub.served.values()].reduce((a, b) => a + b, 0) };
      const replacedAt = Date.now();
      redis!.kill('SIGKILL');
      await redis;
      await rm(redisDir, { recursive: true, force: true });
      await mkdir(redisDir);
      await startRedis(false);
      const again = await up.until(
        (s) => allReady(2)(s) && up.output().includes("this start's jobs are back in Redis"),
        60_000,
        'every model ready in the new Redis',
      );
      console.log(`external Redis replaced by an empty one: ready again in ${((Date.now() - replacedAt) / 1000).toFixed(1)} s; bytes fetched again ${cdn.bytesServed - served.cdn + [...hub.served.values()].reduce((a, b) => a + b, 0) - served.hub}`);
      expect(cdn.bytesServed).toBe(served.cdn);
      expect([...hub.served.values()].reduce((a, b) => a + b, 0)).toBe(served.hub);
      for (const m of again.models) expect(await sha256File(m.path!), m.name).toBe(expected[m.name]);
      expect(again.comfyui).toMatchObject({ state: 'running', pid: comfyPid });
      expect(await comfyPids(ws.comfyDir)).toEqual([comfyPid]);
      expect(await comfyStarts(ws.comfyDir)).toBe(1);
    } finally {
      const code = await up.stop();
      expect(code, up.output().slice(-3000)).toBe(0);
    }
  });
});
