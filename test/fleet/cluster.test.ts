import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { up, type Stack } from '../../src/runtime/up.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { startTestRedisCluster, type TestRedisCluster } from '../fixtures/redis-cluster.js';
import { comfyPorts, REPO_ROOT, eventually, freePort, makeWorkspace, silentLog, testConfig, writeManifest, type Workspace } from '../helpers.js';

const PASSWORD = 'cluster-board-password';
const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };

interface FleetJob {
  state: string;
  pods: string[];
  result: { pods: { pod: string; models: { state: string }[] }[]; failed: Record<string, string> } | null;
}

/**
 * Two pods on a real three-master Redis Cluster: BullMQ runs each pod's queues under the pod's
 * own hash tag, and a fleet-wide addition (one flow, a child per pod) under the fleet's.
 */
describe('a fleet on a Redis Cluster', () => {
  let cluster: TestRedisCluster;
  let cdn: CdnFixture;
  const pods: { id: string; ws: Workspace; stack: Stack; port: number }[] = [];
  let manifest: string;

  beforeAll(async () => {
    cluster = await startTestRedisCluster();
    cdn = await startCdnFixture({ files: { '/base.safetensors': 1024 * 1024, '/extra.safetensors': 512 * 1024 } });
    manifest = await writeManifest(`[models.checkpoints]\nbase = "${cdn.url('/base.safetensors')}"\n`);
    for (const [id, extra] of [['pod-a', { PHOENIX_FLEET: 'true' }], ['pod-b', { PHOENIX_POD_LABELS: 'gpu=h100' }]] as const) {
      const ws = await makeWorkspace();
      const port = await freePort();
      const config = await testConfig({
        WORKSPACE: ws.dir,
        PHOENIX_PORT: String(port),
        ...(await comfyPorts()),
        PHOENIX_PASSWORD: PASSWORD,
        PHOENIX_POD_ID: id,
        REDIS_CLUSTER: cluster.nodes,
        PROVISION_URL: manifest,
        ...extra,
      });
      pods.push({ id, ws, port, stack: await up(config, silentLog) });
    }
  }, 60_000);
  afterAll(async () => {
    for (const p of pods) await p.stack.stop();
    for (const p of pods) await p.ws.cleanup();
    await cdn.close();
    await cluster.stop();
  });

  const call = async <T>(port: number, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`http://127.0.0.1:${port}${route}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as T };
  };

  it('provisions both pods with every key of a pod under its own hash tag', { timeout: 60_000 }, async () => {
    for (const pod of pods) {
      await eventually(async () => (await call<PodStatus>(pod.port, '/status')).body.ready, 45_000, `${pod.id} ready`);
    }
    const keys = (await Promise.all(cluster.ports.map((p) => execa('redis-cli', ['-p', String(p), '--scan'])))).flatMap((r) => r.stdout.split('\n').filter(Boolean));
    expect(keys.length).toBeGreaterThan(10);
    expect(keys.filter((k) => !/^\{phoenix-(pod-a|pod-b|fleet)\}:/.test(k))).toEqual([]);
    expect(keys.some((k) => k.startsWith('{phoenix-pod-a}:download:'))).toBe(true);
    expect(keys.some((k) => k.startsWith('{phoenix-pod-b}:organize:'))).toBe(true);
  });

  it('adds a model to the pods a label chooses, as one flow, and reports when each has it', { timeout: 60_000 }, async () => {
    const [a] = pods;
    const bad = await call<{ problems: string[] }>(a!.port, '/api/fleet/models', {
      models: [{ source: 'url', url: 'ftp://x/y' }],
      pods: ['pod-z'],
      labels: 'not a label',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.problems).toEqual([
      expect.stringMatching(/^models\[0\]\.url: must be an http\(s\) URL/),
      expect.stringMatching(/^labels: "not a label" is not key=value/),
      'pods: "pod-z" is not a live pod of the fleet',
    ]);
    const none = await call<{ problems: string[] }>(a!.port, '/api/fleet/models', { source: 'url', url: cdn.url('/extra.safetensors'), labels: { gpu: 'a100' } });
    expect(none.body.problems).toEqual(['pods: no live pod matches (see GET /api/fleet)']);

    const added = await call<{ id: string; pods: string[] }>(a!.port, '/api/fleet/models', {
      source: 'url',
      url: cdn.url('/extra.safetensors'),
      category: 'loras',
      labels: { gpu: 'h100' },
    });
    expect(added).toMatchObject({ status: 202, body: { pods: ['pod-b'] } });
    const job = await eventually(async () => {
      const j = (await call<FleetJob>(a!.port, `/api/fleet/jobs/${added.body.id}`)).body;
      return j.state === 'completed' ? j : undefined;
    }, 45_000, 'the fleet job completed');
    expect(job.result).toEqual({ pods: [{ pod: 'pod-b', models: [expect.objectContaining({ state: 'ready', error: null })] }], failed: {} });
    const b = (await call<PodStatus>(pods[1]!.port, '/status')).body;
    expect(b.models.find((m) => m.name === 'extra.safetensors')?.state).toBe('ready');
    expect((await call<PodStatus>(a!.port, '/status')).body.models.some((m) => m.name === 'extra.safetensors')).toBe(false);
  });

  it('runs the fleet board alone, and adds to the fleet from the command line', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const env = { PATH: process.env.PATH ?? '', WORKSPACE: pods[0]!.ws.dir, PHOENIX_PORT: String(port), PHOENIX_PASSWORD: PASSWORD, REDIS_CLUSTER: cluster.nodes };
    const board = execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), 'board', '--fleet'], { cwd: REPO_ROOT, env, extendEnv: false, reject: false, all: true });
    try {
      const fleet = await eventually(async () => (await call<{ pods: { id: string; stale: boolean }[] }>(port, '/api/fleet')).body, 30_000, 'the fleet board');
      expect(fleet.pods.map((p) => [p.id, p.stale])).toEqual([['pod-a', false], ['pod-b', false]]);
      expect((await fetch(`http://127.0.0.1:${port}/status`, { headers: auth })).status).toBe(404);
      expect(await (await fetch(`http://127.0.0.1:${port}/fleet`, { headers: auth })).text()).toContain('pod-b');
      const queues = (await call<{ queues: { name: string }[] }>(port, '/board/api/queues')).body.queues.map((q) => q.name);
      expect(queues).toEqual(expect.arrayContaining(['pod-a/download', 'pod-b/service', 'fleet/fleet']));

      const cli = await execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), 'add', '--fleet', '--pods', 'pod-a', cdn.url('/extra.safetensors'), '--category', 'loras'], {
        cwd: REPO_ROOT, env, extendEnv: false, reject: false,
      });
      expect(cli.exitCode, cli.stderr).toBe(0);
      expect(JSON.parse(cli.stdout)).toMatchObject({ pods: ['pod-a'] });
      await eventually(async () => (await call<PodStatus>(pods[0]!.port, '/status')).body.models.find((m) => m.name === 'extra.safetensors' && m.state === 'ready'), 45_000, 'pod-a has the model');
    } finally {
      board.kill('SIGTERM');
      await board;
    }
  });
});
