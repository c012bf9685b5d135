import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { startUp, upEnv } from '../fixtures/pod.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startTestS3, type TestS3 } from '../fixtures/s3-server.js';
import { eventually, makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const MiB = 1024 * 1024;
const PASSWORD = 'fleet-board-password';
const METRICS_TOKEN = 'fleet-metrics-token-0123456789';
const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
/** Models every pod starts with: one pinned by sha256, one plain URL whose hash nobody knows before. */
const FILES = { '/pinned.safetensors': 3 * MiB, '/plain.safetensors': 2 * MiB, '/added.safetensors': 6 * MiB };

interface Pod {
  id: string;
  ws: Workspace;
  port: number;
  child: ResultPromise;
  output: () => string;
}

interface FleetAnswer {
  pods: { id: string; ready: boolean; stale: boolean; models: { ready: number; total: number }; lastHeartbeat: string; labels: Record<string, string> }[];
}

/**
 * Four `phoenix up` processes — separate workspaces, one Redis, one S3-compatible mirror — and a
 * CDN that counts what it serves: each model leaves its origin once for the whole fleet.
 */
describe('a fleet of pods', () => {
  let redis: TestRedis;
  let s3: TestS3;
  let cdn: CdnFixture;
  let manifest: string;
  const pods: Pod[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    s3 = await startTestS3();
    // Capped per connection, so the pods overlap and have to wait for each other.
    cdn = await startCdnFixture({ files: FILES, faults: { bytesPerSecond: 1 * MiB } });
    manifest = await writeManifest(`
[models.checkpoints.pinned]
source = "url"
url = "${cdn.url('/pinned.safetensors')}"
sha256 = "${cdn.sha256('/pinned.safetensors')}"

[models.loras]
plain = "${cdn.url('/plain.safetensors')}"
`);
  });
  afterAll(async () => {
    for (const p of pods) p.child.kill('SIGKILL');
    await Promise.allSettled(pods.map((p) => p.child));
    await Promise.all(pods.map((p) => p.ws.cleanup()));
    await cdn.close();
    await s3.close();
    await redis.stop();
  });

  async function startPod(id: string, extra: Record<string, string> = {}): Promise<Pod> {
    const ws = await makeWorkspace();
    const env = await upEnv(ws.dir, PASSWORD, {
      PHOENIX_POD_ID: id,
      REDIS_URL: redis.url,
      PROVISION_URL: manifest,
      DOWNLOAD_CONNECTIONS: '4',
      METRICS_TOKEN,
      ...s3.env,
      ...extra,
    });
    const { child, output } = startUp(env, PASSWORD);
    const pod = { id, ws, port: Number(env.PHOENIX_PORT), child, output };
    pods.push(pod);
    return pod;
  }

  const byId = (id: string): Pod => pods.find((p) => p.id === id)!;
  const get = async <T>(pod: Pod, route: string): Promise<T> => (await fetch(`http://127.0.0.1:${pod.port}${route}`, { headers: auth })).json() as Promise<T>;
  const status = (pod: Pod) => get<PodStatus>(pod, '/status');
  /** Body bytes the CDN sent, without the one-byte probes each pod makes to learn a file's size. */
  const originBytes = () => cdn.bytesServed - cdn.requests.filter((r) => r.range === 'bytes=0-0').length;
  const ready = (pod: Pod, what: string, models = 2) =>
    eventually(async () => {
      const s = await status(pod).catch(() => undefined);
      return s?.ready && s.models.length === models && s.models.every((m) => m.state === 'ready') ? s : undefined;
    }, 90_000, `${pod.id} ${what}`).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${pod.id} output ---\n${pod.output().slice(-3000)}`);
    });

  it('provisions every pod with each model fetched from its origin once', { timeout: 240_000 }, async () => {
    // pod-1 and pod-3 serve the fleet board; pod-1 and pod-2 are in zone a.
    const started = await Promise.all(['pod-1', 'pod-2', 'pod-3', 'pod-4'].map((id, i) =>
      startPod(id, { PHOENIX_POD_LABELS: `zone=${i < 2 ? 'a' : 'b'}`, ...(i % 2 === 0 ? { PHOENIX_FLEET: 'true' } : {}) }),
    ));
    const first = byId('pod-1');
    // While pods wait for another, their status says for whom.
    const waited = await eventually(async () => {
      for (const pod of started) {
        const waiting = (await status(pod).catch(() => undefined))?.models.find((m) => m.waitingFor);
        if (waiting) return { pod: pod.id, waitingFor: waiting.waitingFor };
      }
      return undefined;
    }, 60_000, 'a pod waiting for another');
    expect(waited.waitingFor).not.toBe(waited.pod);

    const statuses = await Promise.all(started.map((pod) => ready(pod, 'ready')));
    for (const s of statuses) {
      expect(s.models.map((m) => m.name).sort()).toEqual(['pinned.safetensors', 'plain.safetensors']);
      expect(s.models.find((m) => m.name === 'plain.safetensors')?.sha256).toBe(cdn.sha256('/plain.safetensors'));
    }
    expect(originBytes()).toBe(FILES['/pinned.safetensors'] + FILES['/plain.safetensors']);
    expect(await s3.keys()).toEqual(
      [cdn.sha256('/pinned.safetensors'), cdn.sha256('/plain.safetensors')].map((h) => `models/sha256/${h}`).sort(),
    );

    // The fleet as the fleet board sees it.
    const fleet = await eventually(async () => {
      const f = await get<FleetAnswer>(first, '/api/fleet');
      return f.pods.length === 4 && f.pods.every((p) => p.ready) ? f : undefined;
    }, 20_000, 'four ready pods in /api/fleet');
    expect(fleet.pods.map((p) => [p.id, p.stale, p.models.ready, p.labels.zone])).toEqual([
      ['pod-1', false, 2, 'a'], ['pod-2', false, 2, 'a'], ['pod-3', false, 2, 'b'], ['pod-4', false, 2, 'b'],
    ]);
    const page = await (await fetch(`http://127.0.0.1:${first.port}/fleet`, { headers: auth })).text();
    expect(page).toContain('pod-4');

    // Metrics: with the bearer token, bytes by origin and mirror add up to one origin copy.
    const metrics = await Promise.all(
      started.map(async (pod) => (await fetch(`http://127.0.0.1:${pod.port}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text()),
    );
    const sum = (from: string) =>
      metrics.reduce((n, text) => n + [...text.matchAll(new RegExp(`^phoenix_download_bytes_total\\{source="url",from="${from}"\\} (\\d+)`, 'gm'))].reduce((m, x) => m + Number(x[1]), 0), 0);
    expect(sum('origin')).toBe(FILES['/pinned.safetensors'] + FILES['/plain.safetensors']);
    expect(sum('mirror')).toBe(3 * (FILES['/pinned.safetensors'] + FILES['/plain.safetensors']));
    expect(metrics[0]).toMatch(/^phoenix_pod_ready 1$/m);
    expect((await fetch(`http://127.0.0.1:${first.port}/metrics`)).status).toBe(401);

    // Mirror credentials never reached ComfyUI.
    for (const pod of started) {
      const runs = await readFile(path.join(pod.ws.comfyDir, 'standin-runs.jsonl'), 'utf8');
      expect(runs).not.toContain(s3.env.AWS_SECRET_ACCESS_KEY);
      expect(runs).not.toContain('AWS_ACCESS_KEY_ID');
      expect(runs).not.toContain(METRICS_TOKEN);
    }
  });

  it('adds a model to the fleet; a pod killed while fetching it is taken over; a later pod pulls only from the mirror', { timeout: 240_000 }, async () => {
    const first = byId('pod-1');
    const observer = byId('pod-3');
    const before = originBytes();
    const added = await fetch(`http://127.0.0.1:${first.port}/api/fleet/models`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'url', url: cdn.url('/added.safetensors'), category: 'loras', sha256: cdn.sha256('/added.safetensors'), labels: { zone: 'a' } }),
    });
    expect(added.status).toBe(202);
    const flow = (await added.json()) as { id: string; pods: string[] };
    expect(flow.pods).toEqual(['pod-1', 'pod-2']);

    // The pod that fetches from the origin dies (SIGKILL) while holding the lease.
    const holder = await eventually(async () => {
      for (const pod of [byId('pod-1'), byId('pod-2')]) {
        const model = (await status(pod)).models.find((m) => m.name === 'added.safetensors' || m.id.includes('added'));
        if (model?.state === 'downloading' && model.from === 'origin' && model.bytesDone > 0) return pod;
      }
      return undefined;
    }, 60_000, 'the pod fetching the added model from its origin');
    const survivor = holder.id === 'pod-1' ? byId('pod-2') : byId('pod-1');
    holder.child.kill('SIGKILL');
    await holder.child;

    const done = await ready(survivor, 'ready with the added model', 3);
    expect(done.models.find((m) => m.name === 'added.safetensors')).toMatchObject({ state: 'ready', sha256: cdn.sha256('/added.safetensors') });
    // The survivor took the origin fetch over; the dead pod's part is all that was fetched twice.
    expect(originBytes() - before).toBeGreaterThanOrEqual(FILES['/added.safetensors']);
    expect(originBytes() - before).toBeLessThan(2 * FILES['/added.safetensors']);
    const stale = await eventually(async () => (await get<FleetAnswer>(observer, '/api/fleet')).pods.find((p) => p.id === holder.id && p.stale), 30_000, 'the dead pod marked stale');
    expect(stale.ready).toBe(false);
    // Pods outside the chosen labels were not asked.
    expect((await status(observer)).models.some((m) => m.name === 'added.safetensors')).toBe(false);

    // A pod that joins later gets everything from the mirror.
    const afterKill = originBytes();
    const late = await startPod('pod-5');
    const lateStatus = await ready(late, 'ready from the mirror');
    expect(lateStatus.models).toHaveLength(2);
    expect(originBytes()).toBe(afterKill);
    const lateMetrics = await (await fetch(`http://127.0.0.1:${late.port}/metrics`, { headers: auth })).text();
    expect(lateMetrics).toMatch(/^phoenix_download_bytes_total\{source="url",from="mirror"\} \d+/m);
    expect(lateMetrics).not.toMatch(/from="origin"/);

    for (const pod of pods.filter((p) => p !== holder)) pod.child.kill('SIGTERM');
    for (const pod of pods.filter((p) => p !== holder)) expect((await pod.child).exitCode).toBe(0);
  });
});
