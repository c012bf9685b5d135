import { startBoard } from '../board/server.js';
import { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import { RedisHealth } from '../lib/redis-health.js';
import { produce } from '../producer/produce.js';
import { openQueues } from '../queue/queues.js';
import { startWorkers } from '../workers/index.js';
import { cleanup } from './cleanup.js';
import { watchForLostState } from './recovery.js';
import { EmbeddedRedis, connect, describeTarget, redisTarget, whenReady } from './redis.js';
import { stopOnSignals } from './shutdown.js';

/**
 * The pod's programs one at a time, as supervisord runs them in the image (`phoenix up` runs them
 * all in one process tree instead). Each returns its exit code, or never returns while it serves.
 */

/** `phoenix produce`: enqueues this start's flow and exits. */
export async function runProduce(config: Config, log: Logger): Promise<number> {
  const connection = connect(redisTarget(config), 'worker');
  const queues = openQueues(connection);
  try {
    const result = await produce({ config, queues, connection, log });
    log.info({ action: result.action, jobs: result.jobIds.length }, 'producer done');
    return 0;
  } finally {
    await queues.close();
    connection.disconnect();
  }
}

/**
 * `phoenix workers`. Workers also reconcile on start: a ComfyUI that a killed workers process left
 * behind is stopped (nothing supervises it any more), and the producer then replaces the finished
 * flow so ComfyUI comes back once the disk checks pass. While they run, they put this start's jobs
 * back into a Redis that lost them (runtime/recovery.ts).
 */
export async function runWorkers(config: Config, log: Logger): Promise<number> {
  const target = redisTarget(config);
  const connection = connect(target, 'worker');
  new RedisHealth(connection, describeTarget(target), log);
  const workers = startWorkers({ config, connection, log, prefix: 'phoenix' });
  const queues = openQueues(connection);
  let watch: { stop(): void } | undefined;
  stopOnSignals(async () => {
    watch?.stop();
    await workers.close(10_000);
    await queues.close();
    connection.disconnect();
    if (config.paranoid) await cleanup(config, log, { includeState: false });
  }, log);
  await workers.deps.comfy.stopLeftover();
  await produce({ config, queues, connection, log });
  watch = watchForLostState({ config, connection, queues, workers, log });
  return forever();
}

/** `phoenix board`: Bull Board, /status and the API; 503 with the reason while Redis is away. */
export async function runBoard(config: Config, log: Logger): Promise<number> {
  const target = redisTarget(config);
  const connection = connect(target, 'api');
  const health = new RedisHealth(connection, describeTarget(target), log);
  await whenReady(connection, 120_000);
  const queues = openQueues(connection);
  const board = await startBoard({ config, queues, pod: new PodState(connection, queues.prefix), log, redis: health });
  stopOnSignals(async () => {
    await board.close();
    await queues.close();
    connection.disconnect();
  }, log);
  return forever();
}

/** `phoenix redis`: the pod's redis-server; exits when redis-server does, so supervisord restarts it. */
export async function runRedis(config: Config, log: Logger): Promise<number> {
  const redis = new EmbeddedRedis({ stateDir: config.stateDir, persistent: config.persistentStorage !== undefined, log });
  await redis.start();
  let stopping = false;
  stopOnSignals(async () => {
    stopping = true;
    await redis.stop();
    if (config.paranoid) await cleanup(config, log, { includeState: true });
  }, log);
  await redis.exited;
  if (!stopping) log.error('redis-server exited');
  return stopping ? 0 : 1;
}

/** `phoenix cleanup`: partial downloads (and, with PARANOID_MODE, caches and histories). */
export async function runCleanup(config: Config, log: Logger): Promise<number> {
  await cleanup(config, log, { includeState: false });
  return 0;
}

/** A program that serves until a signal stops it. */
export function forever(): Promise<number> {
  return new Promise(() => undefined);
}
