import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { podStatus } from '../../src/board/status.js';
import type { Config } from '../../src/config/index.js';
import { SERVICE_JOB_ID } from '../../src/queue/jobs.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import { produce } from '../../src/producer/produce.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { startCdnFixture } from '../fixtures/cdn-server.js';
import { startGdriveFixture } from '../fixtures/gdrive-server.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { comfyPorts, eventually, freePort, makeWorkspace, silentLog, testConfig, writeManifest, type Workspace } from '../helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * The whole flow over a real redis-server: producer → download → organize → service (the stand-in
 * ComfyUI), against a real HTTP server.
 */
describe('provisioning flow', () => {
  let redis: TestRedis;
  let server: StaticServer;
  const good = randomBytes(2_000_000);
  const lora = randomBytes(50_000);
  const stack: { ws?: Workspace; workers?: RunningWorkers; queues?: Queues; conn?: Redis } = {};
  let n = 0;

  beforeAll(async () => {
    redis = await startTestRedis();
    server = await startStaticServer({
      '/models/good.safetensors': { body: good },
      '/dl/lora': { body: lora, filename: 'detail.safetensors' },
      '/models/other.safetensors': { body: randomBytes(10_000) },
    });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });
  afterEach(async () => {
    await stack.workers?.close(5000);
    await stack.queues?.close();
    stack.conn?.disconnect();
    await stack.ws?.cleanup();
  });

  async function boot(env: Record<string, string>, reuse?: { ws: Workspace; prefix: string }, comfy: { backoffMs?: number; healthyResetMs?: number } = {}) {
    const ws = reuse?.ws ?? (await makeWorkspace());
    const prefix = reuse?.prefix ?? `t${process.pid}x${n++}`;
    const config = await testConfig({
      WORKSPACE: ws.dir,
      ...(await comfyPorts()),
      DOWNLOAD_ATTEMPTS: '1',
      ...env,
    });
    const conn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    const workers = startWorkers({
      config,
      connection: conn,
      log: silentLog,
      prefix,
      comfyBackoffMs: comfy.backoffMs ?? 100,
      ...(comfy.healthyResetMs ? { comfyHealthyResetMs: comfy.healthyResetMs } : {}),
    });
    const queues = openQueues(conn, prefix);
    Object.assign(stack, { ws, workers, queues, conn });
    return { ws, prefix, config, conn, workers, queues };
  }

  async function waitReady(config: Config, queues: Queues, conn: Redis) {
    return eventually(async () => {
      const s = await podStatus(config, queues, new PodState(conn, queues.prefix));
      return s.ready ? s : undefined;
    }, 60_000, 'ComfyUI ready');
  }

  it('publishes every model verified before ComfyUI starts, and a second run adds nothing', async () => {
    const { ws, config, conn, queues } = await boot({
      HUGGINGFACE_MODELS: '',
      PROVISION_URL: await writeManifest(`
[models.checkpoints.good]
source = "url"
url = "${server.url('/models/good.safetensors')}"
sha256 = "${sha(good)}"

[models.lora]
detail = "${server.url('/dl/lora')}"
`),
    });
    const first = await produce({ config, queues, connection: conn, log: silentLog });
    expect(first.action).toBe('started');
    expect(first.jobIds).toHaveLength(5);

    const status = await waitReady(config, queues, conn);
    expect(status.models.map((m) => [m.name, m.category, m.state, m.bytes])).toEqual(
      expect.arrayContaining([
        ['good.safetensors', 'checkpoints', 'ready', good.length],
        ['detail.safetensors', 'loras', 'ready', lora.length],
      ]),
    );
    const goodPath = path.join(ws.comfyDir, 'models/checkpoints/good.safetensors');
    expect(sha(await readFile(goodPath))).toBe(sha(good));
    expect(sha(await readFile(path.join(ws.comfyDir, 'models/loras/detail.safetensors')))).toBe(sha(lora));
    // ComfyUI started after the files were in place.
    const run = JSON.parse((await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8')).trim().split('\n')[0]!);
    expect(run.started * 1000).toBeGreaterThan((await stat(goodPath)).mtimeMs);
    // Behind the login: on 127.0.0.1 and the internal port, never the public one.
    expect(run.argv.slice(1, 5)).toEqual(['--listen', '127.0.0.1', '--port', String(config.comfyui.listen.port)]);
    expect(config.comfyui.listen.port).not.toBe(config.comfyui.port);
    expect(run.argv).toContain('--cpu');

    const again = await produce({ config, queues, connection: conn, log: silentLog });
    expect(again).toEqual({ action: 'unchanged', jobIds: [] });
    const counts = await queues.queue.download.getJobCounts();
    expect(counts.completed).toBe(2);
  });

  it('reports a model that fails for good and still starts ComfyUI', async () => {
    const { ws, config, conn, queues } = await boot({
      PROVISION_URL: await writeManifest(`
[models.checkpoints.corrupt]
source = "url"
url = "${server.url('/models/other.safetensors')}"
sha256 = "${'0'.repeat(64)}"

[models.vae.missing]
source = "url"
url = "${server.url('/models/missing.safetensors')}"

[models.loras.fine]
source = "url"
url = "${server.url('/dl/lora')}"
`),
    });
    await produce({ config, queues, connection: conn, log: silentLog });
    const status = await waitReady(config, queues, conn);
    const byOrigin = Object.fromEntries(status.models.map((m) => [m.origin, m]));
    expect(byOrigin['manifest models.checkpoints.corrupt']).toMatchObject({ state: 'failed', path: null });
    expect(byOrigin['manifest models.checkpoints.corrupt']!.error).toMatch(/sha256 .* expected 0{64}.*discarded/);
    expect(byOrigin['manifest models.vae.missing']).toMatchObject({ state: 'failed' });
    expect(byOrigin['manifest models.vae.missing']!.error).toMatch(/HTTP 404/);
    expect(byOrigin['manifest models.loras.fine']).toMatchObject({ state: 'ready' });
    // Nothing of the corrupt file was published, and the temp area holds nothing.
    await expect(readdir(path.join(ws.comfyDir, 'models/checkpoints'))).rejects.toThrow(/ENOENT/);
    expect(await readdir(path.join(ws.comfyDir, 'models/.phoenix-tmp'))).toEqual([]);
    const service = await queues.queue.service.getJob(SERVICE_JOB_ID);
    expect(service?.returnvalue.failedDependencies).toHaveLength(2);
  });

  it('downloads nothing again after a restart, and starts ComfyUI again', async () => {
    const env = { PROVISION_URL: await writeManifest(`[models.checkpoints]\ngood = "${server.url('/models/good.safetensors')}"\n`) };
    const first = await boot(env);
    await produce({ config: first.config, queues: first.queues, connection: first.conn, log: silentLog });
    await waitReady(first.config, first.queues, first.conn);
    const servedBefore = server.served.get('/models/good.safetensors') ?? 0;

    // The workers process stops (and ComfyUI with it), then a new one starts on the same Redis.
    await first.workers.close(5000);
    await first.queues.close();
    first.conn.disconnect();
    const second = await boot(env, { ws: first.ws, prefix: first.prefix });
    const result = await produce({ config: second.config, queues: second.queues, connection: second.conn, log: silentLog });
    expect(result.action).toBe('started');
    const status = await waitReady(second.config, second.queues, second.conn);
    expect(status.models).toMatchObject([{ name: 'good.safetensors', state: 'ready' }]);
    expect(server.served.get('/models/good.safetensors') ?? 0).toBe(servedBefore);
  });

  it('re-hashes the files in place instead of downloading them when the verified record is damaged', async () => {
    const env = { PROVISION_URL: await writeManifest(`[models.checkpoints]\ngood = "${server.url('/models/good.safetensors')}"\n`) };
    const first = await boot(env);
    await produce({ config: first.config, queues: first.queues, connection: first.conn, log: silentLog });
    await waitReady(first.config, first.queues, first.conn);
    await first.workers.close(5000);
    await first.queues.close();
    first.conn.disconnect();

    const modelsRoot = path.join(first.ws.comfyDir, 'models');
    const recordPath = path.join(modelsRoot, '.phoenix-verified.json');
    const whole = await readFile(recordPath, 'utf8');
    await writeFile(recordPath, whole.slice(0, Math.floor(whole.length / 2)));
    const servedBefore = server.served.get('/models/good.safetensors') ?? 0;

    const second = await boot(env, { ws: first.ws, prefix: first.prefix });
    await produce({ config: second.config, queues: second.queues, connection: second.conn, log: silentLog });
    const status = await waitReady(second.config, second.queues, second.conn);
    expect(status.models).toMatchObject([{ name: 'good.safetensors', state: 'ready', sha256: sha(good) }]);
    // Only the one-byte probe that resolves the model's size went out; no body was fetched again.
    expect((server.served.get('/models/good.safetensors') ?? 0) - servedBefore).toBeLessThanOrEqual(1);
    // The damaged record is kept aside, and the new one lists the file again.
    const names = await readdir(modelsRoot);
    const aside = names.filter((n) => n.startsWith('.phoenix-verified.json.damaged-'));
    expect(aside).toHaveLength(1);
    expect(await readFile(path.join(modelsRoot, aside[0]!), 'utf8')).toBe(whole.slice(0, Math.floor(whole.length / 2)));
    const rebuilt = JSON.parse(await readFile(recordPath, 'utf8')) as { files: Record<string, { sha256: string }> };
    expect(rebuilt.files['checkpoints/good.safetensors']?.sha256).toBe(sha(good));
  });

  it('downloads a large Google Drive file through its one-time confirm link', async () => {
    const big = randomBytes(6_000_000);
    const drive = await startGdriveFixture({ files: [{ id: '1bigDriveFile_x', name: 'drive model.safetensors', content: big, large: true }] });
    try {
      const { ws, config, conn, queues } = await boot({
        GDRIVE_BASE_URL: drive.url,
        GDRIVE_USERCONTENT_URL: drive.usercontentUrl,
        DOWNLOAD_CONNECTIONS: '8',
        PROVISION_URL: await writeManifest(`[models.loras.drive]\nsource = "gdrive"\nurl = "${drive.shareLink('1bigDriveFile_x')}"\n`),
      });
      await produce({ config, queues, connection: conn, log: silentLog });
      const status = await waitReady(config, queues, conn);
      expect(status.models[0]?.error ?? null).toBeNull();
      expect(status.models).toMatchObject([{ name: 'drive model.safetensors', category: 'loras', state: 'ready', bytes: big.length }]);
      expect(sha(await readFile(path.join(ws.comfyDir, 'models/loras/drive model.safetensors')))).toBe(sha(big));
      // The confirmed link was used exactly once.
      expect(drive.usercontentRequests.filter((r) => r.path.includes('uuid='))).toHaveLength(1);
    } finally {
      await drive.close();
    }
  });

  it('starts ComfyUI without waiting for models when COMFYUI_WAIT_FOR=none', async () => {
    const cdn = await startCdnFixture({ files: { '/slow.safetensors': 1536 * 1024 }, faults: { bytesPerSecond: 512 * 1024 } });
    try {
      const { config, conn, queues } = await boot({
        COMFYUI_WAIT_FOR: 'none',
        DOWNLOAD_CONNECTIONS: '1',
        PROVISION_URL: await writeManifest(`[models.loras]\nslow = "${cdn.url('/slow.safetensors')}"\n`),
      });
      await produce({ config, queues, connection: conn, log: silentLog });
      const ready = await waitReady(config, queues, conn);
      expect(ready.models).toMatchObject([{ name: expect.any(String), state: expect.stringMatching(/^(queued|downloading)$/) }]);
      // While it downloads, /status lists its file with what the source told so far.
      const downloading = await eventually(async () => {
        const s = await podStatus(config, queues, new PodState(conn, queues.prefix));
        return s.models[0]?.files[0]?.state === 'downloading' ? s.models[0] : undefined;
      }, 10_000, 'the file downloading');
      expect(downloading.files).toEqual([{ name: 'slow.safetensors', path: null, bytes: 1536 * 1024, sha256: null, state: 'downloading' }]);
      const done = await eventually(async () => {
        const s = await podStatus(config, queues, new PodState(conn, queues.prefix));
        return s.models[0]?.state === 'ready' ? s : undefined;
      }, 30_000, 'the model after ComfyUI');
      expect(done.comfyui.restarts).toBe(0);
      expect(done.models[0]!.files).toEqual([
        { name: 'slow.safetensors', path: expect.stringMatching(/models\/loras\/slow\.safetensors$/), bytes: 1536 * 1024, sha256: cdn.sha256('/slow.safetensors'), state: 'ready' },
      ]);
    } finally {
      await cdn.close();
    }
  });

  it('refuses to start ComfyUI on a port another process answers on, naming it', async () => {
    const port = await freePort();
    // Answers like ComfyUI, so only the port check tells it apart from the one Phoenix starts.
    const foreign = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"system":{},"devices":[]}');
    });
    await new Promise<void>((resolve) => foreign.listen(port, '127.0.0.1', resolve));
    try {
      const { ws, config, conn, queues } = await boot({ COMFYUI_INTERNAL_PORT: String(port) });
      await produce({ config, queues, connection: conn, log: silentLog });
      const pod = new PodState(conn, queues.prefix);
      const failed = await eventually(async () => {
        const c = await pod.comfy(config.comfyui.port);
        return c.state === 'failed' ? c : undefined;
      }, 30_000, 'ComfyUI reported failed');
      expect(failed.error).toMatch(new RegExp(`port ${port} \\(COMFYUI_INTERNAL_PORT\\) is already taken`));
      const status = await podStatus(config, queues, pod);
      expect(status.ready).toBe(false);
      // The stand-in was never started.
      await expect(readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8')).rejects.toThrow(/ENOENT/);
    } finally {
      await new Promise<void>((resolve) => foreign.close(() => resolve()));
    }
  });

  it('restarts ComfyUI with backoff when it dies', async () => {
    const ws = await makeWorkspace();
    // The marker file makes the stand-in crash once only.
    const marker = path.join(ws.dir, 'crashed-once');
    const { config, conn, queues } = await boot(
      { STANDIN_EXIT_AFTER: '0.5', STANDIN_EXIT_MARKER: marker },
      { ws, prefix: `t${process.pid}x${n++}` },
    );
    await produce({ config, queues, connection: conn, log: silentLog });
    const pod = new PodState(conn, queues.prefix);
    const restarted = await eventually(async () => {
      const c = await pod.comfy(config.comfyui.port);
      return c.state === 'running' && c.restarts === 1 ? c : undefined;
    }, 30_000, 'a restart');
    expect(restarted.pid).toBeGreaterThan(0);
    expect((await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(2);
    await waitReady(config, queues, conn);
  });

  it('keeps trying a ComfyUI that fails at its first start, showing why between tries', async () => {
    const ws = await makeWorkspace();
    const counter = path.join(ws.dir, 'failures');
    const { config, conn, queues } = await boot({ STANDIN_FAIL_TIMES: '4', STANDIN_FAIL_COUNTER: counter }, { ws, prefix: `t${process.pid}x${n++}` });
    await produce({ config, queues, connection: conn, log: silentLog });
    const pod = new PodState(conn, queues.prefix);
    // Between tries: failed, no pid, ComfyUI's own last lines, and when it is tried again.
    const failed = await eventually(async () => {
      const c = await pod.comfy(config.comfyui.port);
      return c.state === 'failed' ? c : undefined;
    }, 30_000, 'a failed start reported');
    expect(failed).toMatchObject({ pid: null, error: expect.stringMatching(/^ComfyUI exited with 1 before it answered/) });
    expect(failed.lastOutput).toEqual(expect.arrayContaining([expect.stringMatching(/RuntimeError: CUDA error: out of memory \(standin failure \d of 4\)/)]));
    expect(failed.nextTryAt).toBeGreaterThan(failed.updatedAt);
    const status = await podStatus(config, queues, pod);
    expect(status.comfyui.state === 'failed' ? status.comfyui.pid : null).toBeNull();

    // More failures than BullMQ's attempts of the service job: still tried, then up.
    const ready = await waitReady(config, queues, conn);
    expect(ready.comfyui).toMatchObject({ state: 'running', restarts: 4, error: null, lastOutput: [], nextTryAt: null });
    expect(await readFile(counter, 'utf8')).toBe('4');
    expect((await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(5);
  });

  it('doubles the restart delay while ComfyUI keeps dying, and starts over after it stayed healthy', async () => {
    // Delays long enough to be seen between two looks at the pod state, even on a busy machine.
    const { config, conn, queues } = await boot({}, undefined, { backoffMs: 500, healthyResetMs: 2500 });
    await produce({ config, queues, connection: conn, log: silentLog });
    const pod = new PodState(conn, queues.prefix);
    const running = async (previousPid: number | null) =>
      eventually(async () => {
        const c = await pod.comfy(config.comfyui.port);
        return c.state === 'running' && c.pid !== previousPid ? c : undefined;
      }, 30_000, 'ComfyUI running');
    const delayAfterKill = async (pid: number) => {
      process.kill(pid, 'SIGKILL');
      const restarting = await eventually(async () => {
        const c = await pod.comfy(config.comfyui.port);
        return c.state === 'restarting' && c.nextTryAt !== null ? c : undefined;
      }, 10_000, 'a restart scheduled');
      return Math.round((restarting.nextTryAt! - restarting.updatedAt) / 100) * 100;
    };
    let c = await running(null);
    expect(await delayAfterKill(c.pid!)).toBe(500);
    c = await running(c.pid);
    expect(await delayAfterKill(c.pid!)).toBe(1000);
    c = await running(c.pid);
    expect(await delayAfterKill(c.pid!)).toBe(2000);
    // Healthy for longer than the reset period: the next crash waits the first delay again.
    c = await running(c.pid);
    await new Promise((r) => setTimeout(r, 2800));
    expect(await delayAfterKill(c.pid!)).toBe(500);
    expect((await running(c.pid)).restarts).toBe(4);
  });
});
