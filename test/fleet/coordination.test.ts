import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PodCounters } from '../../src/fleet/counters.js';
import { Leases } from '../../src/fleet/lease.js';
import { PodRegistry, type PodRecord } from '../../src/fleet/registry.js';
import type { RedisClient } from '../../src/lib/redis-client.js';
import { startTestRedisCluster, type TestRedisCluster } from '../fixtures/redis-cluster.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { eventually } from '../helpers.js';

const record = (id: string, labels: Record<string, string> = {}): PodRecord => ({
  id,
  labels,
  queuePrefix: `{phoenix-${id}}`,
  ready: true,
  comfyui: 'running',
  models: { ready: 2, total: 3, failed: 0 },
  gpus: [{ name: 'NVIDIA H100', memoryMiB: 81559 }],
  versions: { phoenix: '0.1.0' },
  startedAt: Date.now(),
});

/** Leases, the pod registry and the pod counters over a real redis-server and a real 3-master Redis Cluster. */
describe.each(['server', 'cluster'] as const)('fleet coordination on a Redis %s', (kind) => {
  let single: TestRedis | undefined;
  let cluster: TestRedisCluster | undefined;
  let redis: RedisClient;
  let n = 0;
  const prefix = () => `{fleet-test-${process.pid}-${n++}}`;
  const connectAgain = (): RedisClient =>
    single ? new Redis({ path: single.socket }) : new Cluster(cluster!.ports.map((port) => ({ host: '127.0.0.1', port })));

  beforeAll(async () => {
    if (kind === 'server') single = await startTestRedis();
    else cluster = await startTestRedisCluster();
    redis = connectAgain();
  }, 30_000);
  afterAll(async () => {
    redis.disconnect();
    await single?.stop();
    await cluster?.stop();
  });

  it('gives a lease to one pod at a time, shows its progress, and hands the outcome on', async () => {
    const p = prefix();
    const a = new Leases(redis, p, 'pod-a', 2000);
    const b = new Leases(redis, p, 'pod-b', 2000);
    const lease = await a.tryAcquire('origin:sha256-abc');
    expect(lease).toBeDefined();
    expect(await b.tryAcquire('origin:sha256-abc')).toBeUndefined();
    lease!.report(300, 1000);
    const holder = await eventually(async () => {
      const h = await b.holder('origin:sha256-abc');
      return h?.bytesDone === 300 ? h : undefined;
    }, 5000, 'the holder\'s progress');
    expect(holder).toMatchObject({ pod: 'pod-a', bytesDone: 300, bytes: 1000 });
    await lease!.complete({ sha256: 'abc', bytes: 1000, mirrored: true });
    expect(await b.outcome('origin:sha256-abc')).toMatchObject({ pod: 'pod-a', sha256: 'abc', bytes: 1000, mirrored: true });
    expect(await b.holder('origin:sha256-abc')).toBeUndefined();
    // The next holder learns, in the same step as it acquires, what the one before left; when it
    // starts the work anew, the old outcome goes.
    const again = await b.tryAcquire('origin:sha256-abc');
    expect(again?.previous).toMatchObject({ pod: 'pod-a', sha256: 'abc', mirrored: true });
    expect(await a.outcome('origin:sha256-abc')).toBeDefined();
    await again!.begin();
    expect(await a.outcome('origin:sha256-abc')).toBeUndefined();
    await again!.release();
  });

  it('lets another pod take over when the holder stops renewing, and tells the old holder it lost', async () => {
    const p = prefix();
    // The holder's own connection: cut, as when its pod hangs or loses the network.
    const own = connectAgain();
    const dead = new Leases(own, p, 'pod-dead', 600);
    const lease = await dead.tryAcquire('volume:v:model:m');
    expect(lease).toBeDefined();
    own.disconnect();
    const other = new Leases(redis, p, 'pod-alive', 600);
    const taken = await eventually(() => other.tryAcquire('volume:v:model:m'), 5000, 'the takeover');
    expect(await other.holder('volume:v:model:m')).toMatchObject({ pod: 'pod-alive' });
    // Back on the network, the old holder's next renewal finds the lease gone and aborts its work.
    await own.connect();
    await eventually(() => lease!.signal.aborted, 5000, 'the old holder told it lost');
    expect(String((lease!.signal.reason as Error).message)).toMatch(/lost the lease/);
    // Its release does not remove the new holder's lease.
    await lease!.release();
    expect(await other.holder('volume:v:model:m')).toMatchObject({ pod: 'pod-alive' });
    own.disconnect();
    await taken.release();
  });

  it('lists pods with their last record, marks the stale ones, and forgets nothing live', async () => {
    const p = prefix();
    const registry = new PodRegistry(redis, p, 300);
    await registry.beat(record('pod-b', { region: 'eu' }));
    await registry.beat(record('pod-a'));
    let pods = await registry.list();
    expect(pods.map((x) => [x.id, x.stale])).toEqual([['pod-a', false], ['pod-b', false]]);
    expect(pods[1]).toMatchObject({ labels: { region: 'eu' }, gpus: [{ name: 'NVIDIA H100' }], models: { ready: 2, total: 3 } });
    expect(Date.now() - pods[0]!.lastHeartbeat).toBeLessThan(5000);
    // pod-b keeps beating; pod-a stops (killed): stale after three missed beats.
    const beats = setInterval(() => void registry.beat(record('pod-b', { region: 'eu' })), 100);
    try {
      pods = await eventually(async () => {
        const l = await registry.list();
        return l.find((x) => x.id === 'pod-a')?.stale ? l : undefined;
      }, 5000, 'pod-a stale');
      expect(pods.find((x) => x.id === 'pod-b')?.stale).toBe(false);
    } finally {
      clearInterval(beats);
    }
    await registry.stopped('pod-b');
    expect((await registry.list()).every((x) => x.stale)).toBe(true);
  });

  it('counts downloaded bytes by source and origin or mirror, and verification failures', async () => {
    const counters = new PodCounters(redis, prefix());
    await counters.addDownload('huggingface', 'origin', 1000, 0.5);
    await counters.addDownload('huggingface', 'mirror', 4000, 0.25);
    await counters.addDownload('civitai', 'origin', 10, 0.1);
    await counters.addVerificationFailure('mirror');
    const values = await counters.read();
    expect(values.bytes.sort((x, y) => x.value - y.value)).toEqual([
      { source: 'civitai', from: 'origin', value: 10 },
      { source: 'huggingface', from: 'origin', value: 1000 },
      { source: 'huggingface', from: 'mirror', value: 4000 },
    ]);
    expect(values.seconds.find((s) => s.from === 'origin')?.value).toBeCloseTo(0.6);
    expect(values.verificationFailures).toEqual([{ from: 'mirror', value: 1 }]);
  });
});
