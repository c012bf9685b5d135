import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podStatus } from '../../src/board/status.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import { startPrivacy, type RunningPrivacy } from '../../src/privacy/service.js';
import { produce } from '../../src/producer/produce.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { comfyPorts, eventually, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

/** The workers with privacy on, as `phoenix workers` runs them: ComfyUI gets the proxy, the switches and the flag. */
describe('ComfyUI started with privacy on', () => {
  let redis: TestRedis;
  let ws: Workspace;
  let conn: Redis;
  let queues: Queues;
  let privacy: RunningPrivacy;
  let workers: RunningWorkers;

  beforeAll(async () => {
    redis = await startTestRedis();
    ws = await makeWorkspace();
    // This ComfyUI declares --disable-api-nodes, as ComfyUI does since its API nodes came.
    await mkdir(path.join(ws.comfyDir, 'comfy'), { recursive: true });
    const declared = ['--listen', '--port', '--cpu', '--extra-model-paths-config', '--disable-api-nodes'];
    await writeFile(path.join(ws.comfyDir, 'comfy', 'cli_args.py'), declared.map((f) => `parser.add_argument("${f}")`).join('\n'));
  });
  afterAll(async () => {
    await workers?.close(5000);
    await privacy?.stop();
    await queues?.close();
    conn?.disconnect();
    await redis.stop();
    await ws.cleanup();
  });

  it('gives ComfyUI the egress proxy, the telemetry switches and --disable-api-nodes, and /status says what is enforced', async () => {
    const config = await testConfig({ WORKSPACE: ws.dir, ...(await comfyPorts()), PRIVACY_ENABLED: 'true' });
    const prefix = `privw${process.pid}`;
    conn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    privacy = await startPrivacy({ config, connection: conn, prefix, log: silentLog });
    workers = startWorkers({ config, connection: conn, log: silentLog, prefix, comfyEnv: privacy.comfyEnv });
    queues = openQueues(conn, prefix);
    await produce({ config, queues, connection: conn, log: silentLog });
    const status = await eventually(async () => {
      const s = await podStatus(config, queues, new PodState(conn, prefix));
      return s.ready ? s : undefined;
    }, 30_000, 'ComfyUI ready');

    const runs = (await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8')).trim().split('\n');
    const run = JSON.parse(runs.at(-1)!) as { argv: string[]; env: Record<string, string> };
    expect(run.argv).toContain('--disable-api-nodes');
    expect(run.env).toMatchObject({ HTTPS_PROXY: privacy.report!.proxy, http_proxy: privacy.report!.proxy, NO_PROXY: 'localhost,127.0.0.1,::1', HF_HUB_DISABLE_TELEMETRY: '1' });
    expect(status.privacy).toMatchObject({ enabled: true, phase: 'strict', enforcement: 'proxy', proxy: privacy.report!.proxy });
    expect(status.privacy.reason).toContain('code that ignores it is not stopped');
  }, 40_000);
});
