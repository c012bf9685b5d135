import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { problemsOf } from './problems.js';

const MIRROR = {
  MODEL_MIRROR: 's3://phoenix-models/fleet/models/',
  MODEL_MIRROR_ENDPOINT: 'https://abc123.r2.cloudflarestorage.com/',
  AWS_ACCESS_KEY_ID: 'AKIAFLEETKEYID0001',
  AWS_SECRET_ACCESS_KEY: 'fleet-secret-access-key-value',
  AWS_REGION: 'auto',
};

describe('fleet configuration', () => {
  it('keeps a pod on its own Redis exactly as before: queue prefix `phoenix`, no fleet', async () => {
    const c = await loadConfig({ HOSTNAME: 'box-1' });
    expect(c.fleet).toMatchObject({ podId: 'box-1', shared: false, board: false, queuePrefix: 'phoenix', labels: {} });
    expect(c.redisCluster).toBeUndefined();
    expect(c.mirror).toBeUndefined();
  });

  it('puts a pod on a shared Redis under its own hash tag, named by PHOENIX_POD_ID, else RUNPOD_POD_ID, else the host name', async () => {
    const shared = { REDIS_URL: 'rediss://default:redis-pass-123@redis.example.com:6380' };
    expect((await loadConfig({ ...shared, PHOENIX_POD_ID: 'gpu-7', RUNPOD_POD_ID: 'abc', HOSTNAME: 'h' })).fleet).toMatchObject({
      podId: 'gpu-7',
      shared: true,
      queuePrefix: '{phoenix-gpu-7}',
      fleetPrefix: '{phoenix-fleet}',
    });
    expect((await loadConfig({ ...shared, RUNPOD_POD_ID: 'x1y2z3', HOSTNAME: 'h' })).fleet.podId).toBe('x1y2z3');
    expect((await loadConfig({ ...shared, HOSTNAME: 'ip-10-0-0-1.ec2.internal' })).fleet.podId).toBe('ip-10-0-0-1.ec2.internal');
    expect((await loadConfig({ ...shared, HOSTNAME: 'weird host!' })).fleet.podId).toBe('weird-host-');
    // The Redis password is a secret like any other.
    expect((await loadConfig(shared)).secrets).toContain('redis-pass-123');
  });

  it('reads a Redis Cluster from REDIS_CLUSTER, as a node list or through REDIS_URL', async () => {
    const list = await loadConfig({ REDIS_CLUSTER: '10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002' });
    expect(list.redisCluster).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    expect(list.fleet.shared).toBe(true);
    const viaUrl = await loadConfig({ REDIS_CLUSTER: 'true', REDIS_URL: 'rediss://:pw-cluster-1@cfg.cache.amazonaws.com:6379' });
    expect(viaUrl.redisCluster).toEqual([{ host: 'cfg.cache.amazonaws.com', port: 6379 }]);
    expect((await loadConfig({ REDIS_CLUSTER: 'false' })).redisCluster).toBeUndefined();
  });

  it('parses the mirror and its credentials, which are secrets kept from ComfyUI', async () => {
    const c = await loadConfig({ ...MIRROR, PATH: '/usr/bin', METRICS_TOKEN: 'metrics-token-0123456789' });
    expect(c.mirror).toEqual({
      bucket: 'phoenix-models',
      prefix: 'fleet/models',
      endpoint: 'https://abc123.r2.cloudflarestorage.com',
      region: 'auto',
      credentials: { accessKeyId: 'AKIAFLEETKEYID0001', secretAccessKey: 'fleet-secret-access-key-value' },
    });
    expect(c.secrets).toEqual(expect.arrayContaining(['AKIAFLEETKEYID0001', 'fleet-secret-access-key-value', 'metrics-token-0123456789']));
    expect(c.comfyui.env).toEqual({ PATH: '/usr/bin', MODEL_MIRROR: MIRROR.MODEL_MIRROR, MODEL_MIRROR_ENDPOINT: MIRROR.MODEL_MIRROR_ENDPOINT, AWS_REGION: 'auto' });
    expect(c.metricsToken).toBe('metrics-token-0123456789');
    expect((await loadConfig({ MODEL_MIRROR: 's3://bucket-only', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' })).mirror).toMatchObject({
      bucket: 'bucket-only',
      prefix: '',
      endpoint: undefined,
      region: 'us-east-1',
    });
  });

  it('lists every fleet problem at once, each naming its variable', async () => {
    const problems = await problemsOf({
      PHOENIX_POD_ID: 'bad id',
      PHOENIX_POD_LABELS: 'zone=eu,oops',
      PHOENIX_FLEET: 'true',
      REDIS_CLUSTER: 'node-a,node-b:99999',
      MODEL_MIRROR: 's3://Bad_Bucket',
      MODEL_MIRROR_ENDPOINT: 'ftp://x',
      METRICS_TOKEN: 'short',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PHOENIX_POD_ID: must be 1-63 letters/),
        expect.stringMatching(/^MODEL_MIRROR: must be s3:\/\/bucket\[\/prefix\]/),
        expect.stringMatching(/^MODEL_MIRROR_ENDPOINT: must be an http\(s\) URL/),
        expect.stringMatching(/^METRICS_TOKEN: must be at least 16 characters/),
        'PHOENIX_POD_LABELS: "oops" is not key=value (letters, digits, . _ / -)',
        'REDIS_CLUSTER: "node-a" is not host:port',
        'REDIS_CLUSTER: "node-b:99999" is not host:port',
      ]),
    );
    expect(await problemsOf({ MODEL_MIRROR: 's3://models' })).toEqual([
      'AWS_ACCESS_KEY_ID: needed with MODEL_MIRROR (the mirror\'s access key)',
      'AWS_SECRET_ACCESS_KEY: needed with MODEL_MIRROR (the mirror\'s access key)',
    ]);
    expect(await problemsOf({ PHOENIX_FLEET: 'true' })).toEqual(['PHOENIX_FLEET: needs a shared Redis (set REDIS_URL or REDIS_CLUSTER)']);
    expect(await problemsOf({ REDIS_CLUSTER: 'true' })).toEqual([
      'REDIS_CLUSTER: `true` needs REDIS_URL (redis:// or rediss://) naming a node of the cluster',
    ]);
  });
});
