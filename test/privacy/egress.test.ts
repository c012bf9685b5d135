import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import type { ResultPromise } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PodState } from '../../src/comfyui/pod-state.js';
import { loadConfig } from '../../src/config/index.js';
import type { Phase } from '../../src/privacy/policy.js';
import { PrivacyStore, type EnforcementReport } from '../../src/privacy/store.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { makeNamespaces, makeUser, type Namespaces } from '../fixtures/netns.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { REPO_ROOT } from '../helpers.js';

/**
 * The egress proxy and firewall for real: the pod and the outside in network namespaces made
 * here, the proxy in the pod's namespace, and a stand-in custom node that phones home as
 * ComfyUI's user, once honouring the proxy variables (plain HTTP and a CONNECT tunnel) and once
 * ignoring them. Every phase in every mode; the observed table is compared with the expected one.
 */

const HOSTS = {
  telemetry: 'api.mixpanel.com',
  ai: 'api.openai.com',
  model: 'huggingface.co',
  allowed: 'allowed.example',
  other: 'other.example',
} as const;
type HostRole = keyof typeof HOSTS;
const PHASES: readonly Phase[] = ['startup', 'downloads', 'strict', 'lockdown'];
const PHONE_HOME = path.join(REPO_ROOT, 'test/fixtures/phone-home/__init__.py');
const CHILD = path.join(REPO_ROOT, 'test/privacy/privacy-child.ts');
const TSX = path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs');
/** Debian's python3: one every user can run (a per-user installation's shim may not be). */
const SYSTEM_PYTHON = '/usr/bin/python3';

type Mode = 'proxy' | 'firewall' | 'monitoring';
/** Per host: through the proxy by plain HTTP / by CONNECT, and directly. y = got through. */
type Observed = Record<HostRole, string>;

interface Pod {
  prefix: string;
  queues: Queues;
  store: PrivacyStore;
  comfyEnv: Record<string, string>;
  report: EnforcementReport;
  child: ResultPromise;
  /** Who the stand-in node runs as. */
  runAs: { name: string; uid: number; gid: number };
}

const asRoot = process.getuid?.() === 0;

describe.skipIf(!asRoot)('egress from ComfyUI\'s side, in network namespaces', () => {
  let ns: Namespaces;
  let redis: TestRedis;
  let conn: Redis;
  /** ComfyUI's user of the firewall mode; the other modes' stand-in runs as `plain`, whom no rule names. */
  let user: Awaited<ReturnType<typeof makeUser>>;
  let plain: Awaited<ReturnType<typeof makeUser>>;
  let tmp: string;
  const pods: Partial<Record<Mode, Pod>> = {};

  async function startPod(mode: Mode, extra: Record<string, string> = {}): Promise<Pod> {
    const prefix = `egress${mode}${process.pid}`;
    const env = {
      PATH: process.env.PATH ?? '',
      WORKSPACE: tmp,
      REDIS_URL: redis.url,
      PRIVACY_ENABLED: 'true',
      PRIVACY_ALLOW: HOSTS.allowed,
      ...(mode === 'proxy' ? {} : { COMFYUI_USER: user.name }),
      ...(mode === 'monitoring' ? { MONITORING_ONLY: 'true' } : {}),
      ...extra,
    };
    const child = ns.inPod(process.execPath, ['--import', TSX, CHILD, prefix, path.join(tmp, 'no-marker')], { env, extendEnv: false, buffer: false });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      child.then((r) => reject(new Error(`privacy child exited: ${String(r.stderr ?? '')}`)), reject);
    });
    const { comfyEnv, report } = JSON.parse(line) as { comfyEnv: Record<string, string>; report: EnforcementReport };
    const queues = openQueues(conn, prefix);
    const config = await loadConfig(env);
    return { prefix, queues, store: new PrivacyStore(queues, config), comfyEnv, report, child, runAs: mode === 'firewall' ? user : plain };
  }

  /** The stand-in node's tries, as ComfyUI's user inside the pod. */
  async function phoneHome(pod: Pod, args: string[], hosts: readonly string[] = Object.values(HOSTS)): Promise<Record<string, { ok: boolean; bytes: number; error: string | null }>> {
    const r = await ns.inPod('setpriv', [`--reuid=${pod.runAs.uid}`, `--regid=${pod.runAs.gid}`, '--clear-groups', SYSTEM_PYTHON, PHONE_HOME, ...args, ...hosts], {
      env: pod.comfyEnv,
      extendEnv: false,
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    return JSON.parse(String(r.stdout)) as Record<string, { ok: boolean; bytes: number; error: string | null }>;
  }

  async function observe(pod: Pod): Promise<Observed> {
    const [http, tunnel, direct] = await Promise.all([
      phoneHome(pod, ['--mode', 'proxy']),
      phoneHome(pod, ['--mode', 'proxy', '--tunnel']),
      phoneHome(pod, ['--mode', 'direct']),
    ]);
    const mark = (ok: boolean | undefined) => (ok ? 'y' : '-');
    return Object.fromEntries(
      Object.entries(HOSTS).map(([role, host]) => [role, `${mark(http[host]?.ok)}${mark(tunnel[host]?.ok)} ${mark(direct[host]?.ok)}`]),
    ) as Observed;
  }

  async function setPhase(pod: Pod, phase: Phase): Promise<void> {
    const podState = new PodState(conn, pod.prefix);
    await pod.store.setLockdown(phase === 'lockdown');
    await pod.queues.queue.download.remove('busy');
    if (phase === 'startup') await conn.del(`${pod.prefix}:pod:comfyui`);
    else await podState.setComfy({ state: 'running', pid: 1, port: 8188, restarts: 0, error: null, lastOutput: [], nextTryAt: null, startedAt: Date.now(), updatedAt: Date.now() });
    if (phase === 'downloads') await pod.queues.queue.download.add('download-model', {}, { jobId: 'busy' });
    expect(await pod.store.phase()).toBe(phase);
  }

  beforeAll(async () => {
    ns = await makeNamespaces(Object.values(HOSTS));
    redis = await startTestRedis();
    conn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    user = await makeUser();
    plain = await makeUser();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'phoenix-egress-'));
    const [proxy, firewall, monitoring] = await Promise.all([
      startPod('proxy', { DOWNLOAD_GRACE_PERIOD: '2' }),
      startPod('firewall'),
      startPod('monitoring'),
    ]);
    Object.assign(pods, { proxy, firewall, monitoring });
  }, 60_000);

  afterAll(async () => {
    for (const pod of Object.values(pods)) {
      pod.child.kill('SIGTERM');
      await pod.child.catch(() => undefined);
      await pod.queues.close();
    }
    conn?.disconnect();
    await redis?.stop();
    await user?.remove();
    await plain?.remove();
    await ns?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('reports what each mode enforces, and never more', () => {
    expect(pods.proxy!.report).toMatchObject({ enforcement: 'proxy', reason: expect.stringContaining('COMFYUI_USER is not set') });
    expect(pods.firewall!.report).toMatchObject({ enforcement: 'firewall', user: user.name });
    expect(pods.monitoring!.report).toMatchObject({ enforcement: 'none', reason: expect.stringContaining('MONITORING_ONLY') });
    for (const pod of Object.values(pods)) {
      expect(pod.comfyEnv.HTTPS_PROXY).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(pod.comfyEnv.NO_PROXY).toBe('localhost,127.0.0.1,::1');
    }
    expect(pods.proxy!.comfyEnv).toMatchObject({ HF_HUB_DISABLE_TELEMETRY: '1', DO_NOT_TRACK: '1' });
    expect(pods.monitoring!.comfyEnv.DO_NOT_TRACK).toBeUndefined();
  });

  it('lets through, per phase and mode, exactly what the policy says', async () => {
    // "HC D": through the proxy by plain HTTP, by CONNECT; D directly. y = reached the host.
    const proxied = (blocked: readonly HostRole[], direct: 'y' | '-') =>
      Object.fromEntries((Object.keys(HOSTS) as HostRole[]).map((r) => [r, `${blocked.includes(r) ? '--' : 'yy'} ${direct}`]));
    const everyPhase = (f: (phase: Phase) => Record<string, string>) => Object.fromEntries(PHASES.map((p) => [p, f(p)]));
    const blockedIn: Record<Phase, HostRole[]> = {
      startup: ['telemetry', 'ai'],
      downloads: ['telemetry', 'ai'],
      strict: ['telemetry', 'ai', 'other'],
      lockdown: ['telemetry', 'ai', 'model', 'allowed', 'other'],
    };
    const expected = {
      proxy: everyPhase((p) => proxied(blockedIn[p], 'y')),
      firewall: everyPhase((p) => proxied(blockedIn[p], '-')),
      monitoring: everyPhase(() => proxied([], 'y')),
    };
    const observed: Record<string, Record<string, Observed>> = {};
    for (const mode of ['proxy', 'firewall', 'monitoring'] as const) {
      observed[mode] = {};
      for (const phase of PHASES) {
        await setPhase(pods[mode]!, phase);
        observed[mode][phase] = await observe(pods[mode]!);
      }
      await setPhase(pods[mode]!, 'strict');
    }
    if (process.env.PHOENIX_PRIVACY_TABLE) process.stdout.write(`${JSON.stringify(observed, null, 1)}\n`);
    expect(observed).toEqual(expected);
  }, 60_000);

  it('records each connection with its host, port, bytes, verdict and the process user', async () => {
    const pod = pods.firewall!;
    await setPhase(pod, 'strict');
    await phoneHome(pod, ['--mode', 'proxy'], [HOSTS.model, HOSTS.ai]);
    const recent = await pod.store.recent(10);
    const model = recent.find((r) => r.host === HOSTS.model && r.method === 'HTTP');
    const ai = recent.find((r) => r.host === HOSTS.ai && r.method === 'HTTP');
    expect(model).toMatchObject({ port: 80, allowed: true, user: user.name, phase: 'strict', category: 'model-source' });
    expect(model!.bytesReceived).toBeGreaterThan(0);
    expect(model!.bytesSent).toBeGreaterThan(0);
    expect(ai).toMatchObject({ allowed: false, user: user.name, category: 'ai-service', rule: 'AI service (BLOCK_AI_SERVICES)', bytesReceived: 0 });
    const counts = await pod.store.counts();
    expect(counts.blocked).toBeGreaterThan(0);
    expect(counts.allowed).toBeGreaterThan(0);
  });

  it('in monitoring mode records what it would have blocked', async () => {
    const recent = await pods.monitoring!.store.recent(500);
    expect(recent.some((r) => r.host === HOSTS.telemetry && r.allowed && r.wouldBlock && r.rule.startsWith('monitoring only'))).toBe(true);
    expect((await pods.monitoring!.store.counts()).blocked).toBe(0);
  });

  it('never cuts a download in progress when the phase turns strict', async () => {
    const pod = pods.proxy!;
    await setPhase(pod, 'downloads');
    const bytes = 200_000;
    const stream = phoneHome(pod, ['--mode', 'proxy', '--tunnel', '--path', `/stream?bytes=${bytes}&chunk=10000&ms=100`], [HOSTS.other]);
    await new Promise((r) => setTimeout(r, 500));
    await setPhase(pod, 'strict');
    expect((await phoneHome(pod, ['--mode', 'proxy', '--tunnel'], [HOSTS.other]))[HOSTS.other]!.ok).toBe(false);
    expect((await stream)[HOSTS.other]).toMatchObject({ ok: true, bytes });
  });

  it('holds the downloads phase for the grace period after the last download ends', async () => {
    const pod = pods.proxy!;
    await setPhase(pod, 'strict');
    const workerConn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    const worker = new Worker('download', async () => 'done', { connection: workerConn, prefix: pod.prefix });
    try {
      const job = await pod.queues.queue.download.add('download-model', {}, { jobId: 'short' });
      const finished = await waitUntil(async () => (await pod.queues.queue.download.getJob(job.id!))?.finishedOn);
      expect(await pod.store.phase()).toBe('downloads');
      expect((await phoneHome(pod, ['--mode', 'proxy'], [HOSTS.other]))[HOSTS.other]!.ok).toBe(true);
      await new Promise((r) => setTimeout(r, Math.max(0, finished + 2100 - Date.now())));
      expect(await pod.store.phase()).toBe('strict');
      expect((await phoneHome(pod, ['--mode', 'proxy'], [HOSTS.other]))[HOSTS.other]!.ok).toBe(false);
    } finally {
      await worker.close();
      workerConn.disconnect();
      await pod.queues.queue.download.remove('short');
    }
  });

  it('closes open connections when a lockdown starts, and lets them again once released', async () => {
    const pod = pods.proxy!;
    await setPhase(pod, 'strict');
    const bytes = 200_000;
    const stream = phoneHome(pod, ['--mode', 'proxy', '--tunnel', '--path', `/stream?bytes=${bytes}&chunk=10000&ms=100`], [HOSTS.allowed]);
    await new Promise((r) => setTimeout(r, 500));
    await pod.store.setLockdown(true);
    const cut = (await stream)[HOSTS.allowed]!;
    expect(cut.ok).toBe(false);
    expect(cut.error).toMatch(/IncompleteRead|reset|closed/i);
    await pod.store.setLockdown(false);
    expect((await phoneHome(pod, ['--mode', 'proxy'], [HOSTS.allowed]))[HOSTS.allowed]!.ok).toBe(true);
  });
});

async function waitUntil<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
