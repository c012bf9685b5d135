import { startBoard } from '../board/server.js';
import { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import { startPrivacy } from '../privacy/service.js';
import { produce } from '../producer/produce.js';
import { openQueues } from '../queue/queues.js';
import { startWorkers } from '../workers/index.js';
import { cleanup } from './cleanup.js';
import { EmbeddedRedis, connect, redisTarget, whenReady } from './redis.js';
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
 * `phoenix workers`. Workers also reconcile on start: after a workers restart ComfyUI (their
 * child) is gone, and the producer then replaces the finished flow so ComfyUI comes back once the
 * disk checks pass.
 */
export async function runWorkers(config: Config, log: Logger): Promise<number> {
  const connection = connect(redisTarget(config), 'worker');
  const privacy = await startPrivacy({ config, connection, prefix: 'phoenix', log });
  const workers = startWorkers({ config, connection, log, prefix: 'phoenix', comfyEnv: privacy.comfyEnv });
  const queues = openQueues(connection);
  stopOnSignals(async () => {
    await workers.close(10_000);
    await privacy.stop();
    await queues.close();
    connection.disconnect();
    if (config.paranoid) await cleanup(config, log, { includeState: false });
  }, log);
  await produce({ config, queues, connection, log });
  return forever();
}

/** `phoenix board`: Bull Board, /status and the API. */
export async function runBoard(config: Config, log: Logger): Promise<number> {
  const connection = connect(redisTarget(config), 'api');
  connection.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  await whenReady(connection, 120_000);
  const queues = openQueues(connection);
  const board = await startBoard({ config, queues, pod: new PodState(connection, queues.prefix), log });
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
