import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { podStatus, type PodStatus } from '../../src/board/status.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import type { Config } from '../../src/config/index.js';
import { produce } from '../../src/producer/produce.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { comfyPorts, eventually, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

export interface Pod {
  ws: Workspace;
  config: Config;
  conn: Redis;
  queues: Queues;
  workers: RunningWorkers;
  pod: PodState;
  status(): Promise<PodStatus>;
  /** Polls /status until `check` holds. */
  until(check: (s: PodStatus) => boolean, what: string, timeoutMs?: number): Promise<PodStatus>;
  /** The stand-in ComfyUI's starts, oldest first. */
  comfyRuns(): Promise<{ pid: number; started: number; custom_nodes: string[] }[]>;
  stop(): Promise<void>;
}

let n = 0;

/** Workers, queues and a fresh workspace over a test Redis: the pod without its HTTP server. */
export async function startPod(socket: string, env: Record<string, string>, options: { produce?: boolean } = {}): Promise<Pod> {
  const ws = await makeWorkspace();
  const prefix = `wf${process.pid}x${n++}`;
  const config = await testConfig({ WORKSPACE: ws.dir, ...(await comfyPorts()), DOWNLOAD_ATTEMPTS: '1', ...env });
  const conn = new Redis({ path: socket, maxRetriesPerRequest: null });
  const workers = startWorkers({ config, connection: conn, log: silentLog, prefix, comfyBackoffMs: 100, reloadQuietMs: 300 });
  const queues = openQueues(conn, prefix);
  const pod = new PodState(conn, prefix);
  if (options.produce !== false) await produce({ config, queues, connection: conn, log: silentLog });
  const status = () => podStatus(config, queues, pod);
  return {
    ws,
    config,
    conn,
    queues,
    workers,
    pod,
    status,
    until: (check, what, timeoutMs = 40_000) =>
      eventually(async () => {
        const s = await status();
        return check(s) ? s : undefined;
      }, timeoutMs, what),
    async comfyRuns() {
      const text = await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { pid: number; started: number; custom_nodes: string[] });
    },
    async stop() {
      await workers.close(5000);
      await queues.close();
      conn.disconnect();
      await ws.cleanup();
    },
  };
}
