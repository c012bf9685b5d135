import { chmod, copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podStatus } from '../../src/board/status.js';
import { isolateThirdPartyCode } from '../../src/comfyui/isolation.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import { ComfyProcess } from '../../src/comfyui/process.js';
import type { Config } from '../../src/config/index.js';
import { detectRunAs, type RunAs } from '../../src/lib/run-as.js';
import { installNode } from '../../src/nodes/install.js';
import { publishFile } from '../../src/organize/publish.js';
import { VerifiedRecord } from '../../src/organize/record.js';
import { RECORD_KEY_FILE } from '../../src/organize/record-key.js';
import { openQueues } from '../../src/queue/queues.js';
import { EmbeddedRedis } from '../../src/runtime/redis.js';
import { startWorkers } from '../../src/workers/index.js';
import { CAN_SWITCH_USERS, COMFY_TEST_USER, ensureComfyTestUser } from '../fixtures/comfy-user.js';
import { GitHost } from '../fixtures/git-repos.js';
import { writeFakePython } from '../nodes/fake-python.js';
import { downloaded } from '../organize/helpers.js';
import { comfyPorts, REPO_ROOT, eventually, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

interface Attempt {
  ok: boolean;
  detail: string;
}
interface ProbeResult {
  uid: number;
  forbidden: Record<string, Attempt>;
  allowed: Record<string, Attempt>;
}

const HOSTILE = path.join(REPO_ROOT, 'test/fixtures/hostile-node');
const files = async (dir: string) => Object.fromEntries(await Promise.all(['__init__.py', 'install.py', 'probe.py'].map(async (n) => [n, await readFile(path.join(dir, n), 'utf8')])));

describe('COMFYUI_USER unusable: Phoenix runs third-party code as itself and says why', () => {
  it('reports mode none with the reason', async () => {
    expect((await detectRunAs(undefined, { PATH: process.env.PATH ?? '' })).status).toEqual({ user: null, mode: 'none', reason: 'COMFYUI_USER is not set' });
    expect((await detectRunAs('no-such-user-here', { PATH: process.env.PATH ?? '' })).status).toEqual({
      user: null,
      mode: 'none',
      reason: 'there is no user "no-such-user-here" on this machine (COMFYUI_USER)',
    });
    expect((await detectRunAs('root', { PATH: process.env.PATH ?? '' })).status.mode).toBe('none');
  });
});

/**
 * A hostile custom node (test/fixtures/hostile-node) installed and imported through the real code
 * path, as a second user: its install.py and its import try every read Phoenix's secrets allow.
 */
describe.runIf(CAN_SWITCH_USERS)('a hostile custom node under COMFYUI_USER', () => {
  let ws: Workspace;
  let config: Config;
  let runAs: RunAs;
  let host: GitHost;
  let redis: EmbeddedRedis;
  let supervisorSocket: net.Server;
  let comfy: ComfyProcess | undefined;
  let user: { uid: number; gid: number };

  let umask: number;

  beforeAll(async () => {
    // Phoenix's umask in the image: nothing it makes is readable by others unless shared on purpose.
    umask = process.umask(0o077);
    user = await ensureComfyTestUser();
    ws = await makeWorkspace();
    const bin = path.join(ws.dir, 'bin');
    // The system's Python and tools: another user cannot run what lives in root's home (pyenv).
    const fake = await writeFakePython(bin, { realPython: '/usr/bin/python3' });
    await chmod(bin, 0o755);
    config = await testConfig({
      PATH: '/usr/local/bin:/usr/bin:/bin',
      WORKSPACE: ws.dir,
      COMFYUI_USER: COMFY_TEST_USER,
      COMFYUI_PYTHON: fake.python,
      // Models on the volume, as on RunPod: a folder Phoenix makes at start, which the node must still reach.
      USE_VOLUME: 'true',
      ...(await comfyPorts()),
      PHOENIX_PASSWORD: 'isolation-password-1',
      HF_TOKEN: 'hf_isolation_token',
    });
    runAs = await isolateThirdPartyCode(config, silentLog);
    // Phoenix's state as a pod has it: Redis on its socket, supervisord's socket, FileBrowser's
    // database, a verified model and its record.
    redis = new EmbeddedRedis({ stateDir: config.stateDir, persistent: false, log: silentLog });
    await redis.start();
    supervisorSocket = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => supervisorSocket.listen(path.join(config.stateDir, 'supervisor.sock'), resolve));
    await writeFile(path.join(config.stateDir, 'filebrowser.db'), 'database');
    const record = new VerifiedRecord(config.modelsRoot, path.join(config.stateDir, RECORD_KEY_FILE));
    await publishFile({ modelId: 'm1', file: await downloaded(config.modelsRoot, 'm1', 'visible.safetensors', 'weights'), category: 'loras', modelsRoot: config.modelsRoot, overwrite: false, record });

    host = await GitHost.start();
    await host.createRepo('Hostile', await files(HOSTILE));
    await installNode({ node: { name: 'Hostile', url: `${host.baseUrl}/Hostile.git` }, comfyuiDir: config.comfyui.dir, python: config.comfyui.python, env: config.comfyui.env, runAs });
    await copyFile(path.join(REPO_ROOT, 'test/fixtures/comfyui/main.py'), path.join(config.comfyui.dir, 'main.py'));
    comfy = new ComfyProcess({
      python: 'python3',
      comfyuiDir: config.comfyui.dir,
      host: config.comfyui.listen.host,
      port: config.comfyui.listen.port,
      portVariable: config.comfyui.listen.variable,
      pidFile: path.join(config.stateDir, 'comfyui.pid'),
      env: config.comfyui.env,
      runAs,
      log: silentLog,
      onStatus: () => undefined,
      startTimeoutMs: 20_000,
    });
    await comfy.start(['--cpu']);
  }, 60_000);
  afterAll(async () => {
    process.umask(umask);
    await comfy?.stop();
    await redis?.stop();
    await new Promise((resolve) => supervisorSocket?.close(resolve));
    await host?.close();
    await ws?.cleanup();
  });

  const result = async (phase: string): Promise<ProbeResult> =>
    JSON.parse(await readFile(path.join(config.comfyui.dir, 'output', `hostile-${phase}.json`), 'utf8')) as ProbeResult;

  it('reports the isolation in force in /status, through the workers', async () => {
    expect(runAs.status).toMatchObject({ user: COMFY_TEST_USER, mode: 'uid' });
    const conn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    const workers = startWorkers({ config, connection: conn, log: silentLog, prefix: 'iso', runAs });
    const queues = openQueues(conn, 'iso');
    try {
      const status = await eventually(async () => {
        const s = await podStatus(config, queues, new PodState(conn, 'iso'));
        return s.isolation.mode === 'uid' ? s : undefined;
      }, 5000, 'the isolation in /status');
      expect(status.isolation).toEqual({ user: COMFY_TEST_USER, mode: 'uid', reason: expect.stringContaining('through setpriv') });
    } finally {
      await workers.close(1000, 1000);
      await queues.close();
      conn.disconnect();
    }
  });

  for (const phase of ['install', 'import']) {
    it(`gets nothing of Phoenix's from its ${phase === 'install' ? 'install.py' : 'import'}, and can still read the models and write its output`, async () => {
      const r = await result(phase);
      expect(r.uid).toBe(user.uid);
      const environs = Object.keys(r.forbidden).filter((k) => k.startsWith('environ of'));
      expect(environs.length).toBeGreaterThan(0);
      for (const key of ['state folder listing', 'redis socket', 'supervisord socket', 'record key', 'filebrowser database', 'write in state folder', 'sudo']) {
        expect(r.forbidden[key], key).toBeDefined();
      }
      expect(Object.keys(r.forbidden).some((k) => k.startsWith('record '))).toBe(true);
      const got = Object.entries(r.forbidden).filter(([, a]) => a.ok);
      expect(got).toEqual([]);
      expect(r.allowed).toEqual({ 'write in output': { ok: true, detail: 'wrote' }, 'read model visible.safetensors': { ok: true, detail: 'read 7 bytes' } });
    });
  }

  it('leaves ComfyUI\'s folders with that user\'s group and Phoenix\'s state to Phoenix alone', async () => {
    expect((await stat(config.stateDir)).mode & 0o777).toBe(0o700);
    const output = await stat(path.join(config.comfyui.dir, 'output'));
    expect(output.gid).toBe(user.gid);
    expect(output.mode & 0o2070).toBe(0o2070);
    expect((await stat(path.join(config.comfyui.dir, 'custom_nodes', 'Hostile', 'install.py'))).uid).toBe(user.uid);
  });

  it('is a probe that does find all of it when run as Phoenix\'s own user (the way without COMFYUI_USER)', async () => {
    const r = JSON.parse((await execa('/usr/bin/python3', [path.join(HOSTILE, 'probe.py'), config.comfyui.dir])).stdout) as ProbeResult;
    for (const key of ['state folder listing', 'redis socket', 'supervisord socket', 'record key', 'filebrowser database', 'write in state folder']) {
      expect(r.forbidden[key]?.ok, key).toBe(true);
    }
    expect(Object.entries(r.forbidden).some(([k, a]) => k.startsWith('environ of') && a.ok)).toBe(true);
  });
});
