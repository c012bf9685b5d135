import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PodCounters } from '../../src/fleet/counters.js';
import { fetchFile, type FetchContext, type FetchProgress, type FileToFetch } from '../../src/fleet/fetch-file.js';
import { Leases } from '../../src/fleet/lease.js';
import { ModelMirror } from '../../src/mirror/store.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startTestS3, type TestS3 } from '../fixtures/s3-server.js';
import { eventually, freePort, silentLog } from '../helpers.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SIZES: Record<string, number> = {
  '/a.safetensors': 6 * MiB,
  '/b.safetensors': 3 * MiB,
  '/c.safetensors': 2 * MiB,
  '/d.safetensors': 2 * MiB,
  '/e.safetensors': 8 * MiB,
};

/**
 * One file fetched by several pods at once over a real Redis, a local S3-compatible mirror and a
 * CDN that counts what it serves: the origin sends the file once, the other pods pull from the mirror.
 */
describe('fetching a file for the fleet', () => {
  let redis: TestRedis;
  let s3: TestS3;
  let cdn: CdnFixture;
  let dir: string;
  let conn: Redis;
  let n = 0;
  const mirrorConfig = (endpoint: string) => ({
    bucket: s3.bucket,
    prefix: 'models',
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const mirrors: ModelMirror[] = [];
  const newMirror = (endpoint = s3.endpoint) => {
    const m = new ModelMirror(mirrorConfig(endpoint));
    mirrors.push(m);
    return m;
  };

  beforeAll(async () => {
    redis = await startTestRedis();
    s3 = await startTestS3();
    // Capped per connection, so that the pods really overlap in time.
    cdn = await startCdnFixture({
      files: SIZES,
      faults: { bytesPerSecond: 1 * MiB },
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-fetch-'));
    conn = new Redis({ path: redis.socket });
  });
  afterAll(async () => {
    for (const m of mirrors) m.close();
    conn.disconnect();
    await cdn.close();
    await s3.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** One pod's view: its own leases handle, counters and part file. */
  function pod(name: string, fleet: string, mirror: ModelMirror | undefined, overrides: Partial<FetchContext> = {}) {
    const seen: FetchProgress[] = [];
    const counters = new PodCounters(conn, `{pod-${fleet}-${name}}`);
    const ctx: FetchContext = {
      leases: new Leases(conn, fleet, name, 1500),
      mirror,
      counters,
      log: silentLog,
      engine: { connections: 4, stallTimeoutMs: 10_000 },
      onProgress: (p) => seen.push(p),
      ...overrides,
    };
    const file = (route: string, known: boolean): FileToFetch => ({
      modelId: `url-${route.slice(1, 2)}-0001`,
      source: 'url',
      name: route.slice(1),
      // Hash and size known before (a CivitAI or Hugging Face file), or neither (a plain URL).
      ...(known ? { bytes: SIZES[route]!, sha256: cdn.sha256(route) } : {}),
      request: { url: cdn.url(route), headers: {} },
      partPath: path.join(dir, `${fleet}-${name}-${route.slice(1)}.part`),
    });
    return { ctx, seen, counters, file };
  }

  it('fetches from the origin once while the other pods wait for it, then pull from the mirror', async () => {
    const fleet = `fleet${n++}`;
    const mirror = newMirror();
    const pods = ['pod-a', 'pod-b', 'pod-c'].map((p) => pod(p, fleet, mirror));
    const before = cdn.bytesServed;
    const results = await Promise.all(pods.map((p) => fetchFile(p.file('/a.safetensors', true), p.ctx)));

    expect(cdn.bytesServed - before).toBe(6 * MiB);
    expect(results.map((r) => r.from).sort()).toEqual(['mirror', 'mirror', 'origin']);
    for (const [i, r] of results.entries()) {
      expect(r.sha256).toBe(cdn.sha256('/a.safetensors'));
      expect(sha(await readFile(pods[i]!.file('/a.safetensors', true).partPath))).toBe(r.sha256);
    }
    const holder = pods[results.findIndex((r) => r.from === 'origin')]!;
    const holderName = ['pod-a', 'pod-b', 'pod-c'][pods.indexOf(holder)];
    const waiters = pods.filter((p) => p !== holder);
    for (const w of waiters) {
      const waiting = w.seen.filter((s) => s.kind === 'waiting');
      expect(waiting.length).toBeGreaterThan(0);
      expect(waiting.every((s) => s.kind === 'waiting' && s.holder.pod === holderName)).toBe(true);
      expect(w.seen.some((s) => s.kind === 'waiting' && s.holder.bytesDone > 0)).toBe(true);
      expect((await w.counters.read()).bytes).toEqual([{ source: 'url', from: 'mirror', value: 6 * MiB }]);
    }
    expect((await holder.counters.read()).bytes).toEqual([{ source: 'url', from: 'origin', value: 6 * MiB }]);
    expect(await s3.keys()).toContain(`models/sha256/${cdn.sha256('/a.safetensors')}`);
  });

  it('uploads a file whose hash is unknown before under its hash once verified; the others find it by the lease', async () => {
    const fleet = `fleet${n++}`;
    const mirror = newMirror();
    const pods = ['pod-a', 'pod-b'].map((p) => pod(p, fleet, mirror));
    const before = cdn.bytesServed;
    const results = await Promise.all(pods.map((p) => fetchFile(p.file('/b.safetensors', false), p.ctx)));
    expect(cdn.bytesServed - before).toBe(3 * MiB);
    expect(results.map((r) => r.from).sort()).toEqual(['mirror', 'origin']);
    expect(results.every((r) => r.sha256 === cdn.sha256('/b.safetensors'))).toBe(true);
    expect(await s3.keys()).toContain(`models/sha256/${cdn.sha256('/b.safetensors')}`);
  });

  it('never uses a mirror object whose hash is wrong: it is reported and replaced from the origin', async () => {
    const fleet = `fleet${n++}`;
    const mirror = newMirror();
    const key = `models/sha256/${cdn.sha256('/c.safetensors')}`;
    await s3.put(key, randomBytes(2 * MiB));
    const p = pod('pod-a', fleet, mirror);
    const before = cdn.bytesServed;
    const result = await fetchFile(p.file('/c.safetensors', true), p.ctx);
    expect(result).toMatchObject({ from: 'origin', sha256: cdn.sha256('/c.safetensors') });
    expect(cdn.bytesServed - before).toBe(2 * MiB);
    expect((await p.counters.read()).verificationFailures).toEqual([{ from: 'mirror', value: 1 }]);
    expect(sha(await s3.get(key))).toBe(cdn.sha256('/c.safetensors'));
  });

  it('goes to the origin when the mirror or the Redis cannot be reached', async () => {
    const fleet = `fleet${n++}`;
    const unreachableMirror = newMirror(`http://127.0.0.1:${await freePort()}`);
    const p = pod('pod-a', fleet, unreachableMirror);
    const result = await fetchFile(p.file('/d.safetensors', true), p.ctx);
    expect(result.from).toBe('origin');
    expect(p.seen.some((s) => s.kind === 'waiting')).toBe(false);

    const closed = new Redis({ path: redis.socket, enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    closed.on('error', () => undefined);
    const q = pod('pod-b', fleet, newMirror(), { leases: new Leases(closed, fleet, 'pod-b') });
    const again = await fetchFile(q.file('/d.safetensors', true), q.ctx);
    // The mirror itself still answers: the bytes come from there, with no lease needed.
    expect(again.sha256).toBe(cdn.sha256('/d.safetensors'));
    const r = pod('pod-c', `fleet${n++}`, undefined, { leases: new Leases(closed, fleet, 'pod-c') });
    expect((await fetchFile(r.file('/d.safetensors', true), r.ctx)).from).toBe('origin');
    closed.disconnect();
  });

  it('takes over the origin fetch of a pod that died holding the lease', async () => {
    const fleet = `fleet${n++}`;
    const mirror = newMirror();
    const own = new Redis({ path: redis.socket });
    const stop = new AbortController();
    const dying = pod('pod-dying', fleet, mirror, { leases: new Leases(own, fleet, 'pod-dying', 1500) });
    const dyingFetch = fetchFile(dying.file('/e.safetensors', true), { ...dying.ctx, signal: stop.signal }).catch((err: Error) => err);
    // The dying pod holds the lease (it is downloading) before the survivor asks for it.
    await eventually(() => dying.seen.some((s) => s.kind === 'downloading' && s.from === 'origin' && s.bytesDone > 0), 10_000, 'pod-dying downloading');
    const survivor = pod('pod-b', fleet, mirror);
    const surviving = fetchFile(survivor.file('/e.safetensors', true), survivor.ctx);
    await eventually(() => survivor.seen.some((s) => s.kind === 'waiting' && s.holder.pod === 'pod-dying' && s.holder.bytesDone > 0), 10_000, 'pod-b waiting for pod-dying');
    // The pod dies: its download stops and it never renews or releases its lease.
    own.disconnect();
    stop.abort(new Error('killed'));
    expect(await dyingFetch).toBeInstanceOf(Error);
    const result = await surviving;
    expect(result).toMatchObject({ from: 'origin', sha256: cdn.sha256('/e.safetensors') });
    expect(await s3.keys()).toContain(`models/sha256/${cdn.sha256('/e.safetensors')}`);
  });
});
