import { mkdir } from 'node:fs/promises';
import { startBoard, type RunningBoard } from '../board/server.js';
import { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import { startPrivacy, type RunningPrivacy } from '../privacy/service.js';
import { produce } from '../producer/produce.js';
import { openQueues, type Queues } from '../queue/queues.js';
import { startWorkers, type RunningWorkers } from '../workers/index.js';
import { cleanup } from './cleanup.js';
import { EmbeddedRedis, connect, redisTarget, whenReady, type RedisTarget } from './redis.js';
import { SHUTDOWN_DEADLINE_MS } from './shutdown.js';

/** Everything `phoenix up` started, stopped in reverse by `stop`. */
export interface Stack {
  board: RunningBoard;
  stop(): Promise<void>;
}

/**
 * `phoenix up`: the pod's whole process tree without supervisord — an embedded Redis (unless
 * REDIS_URL), the workers, the board server and the producer; ComfyUI follows its dependencies.
 */
export async function up(config: Config, log: Logger, options: { prefix?: string } = {}): Promise<Stack> {
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const embedded = config.redisUrl ? undefined : new EmbeddedRedis({ stateDir: config.stateDir, persistent: config.persistentStorage !== undefined, log });
  const target: RedisTarget = embedded ? await embedded.start() : redisTarget(config);

  const workerConnection = connect(target, 'worker');
  const apiConnection = connect(target, 'api');
  for (const c of [workerConnection, apiConnection]) c.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  let privacy: RunningPrivacy | undefined;
  let workers: RunningWorkers | undefined;
  let queues: Queues | undefined;
  let board: RunningBoard | undefined;
  const stop = async (): Promise<void> => {
    await board?.close();
    await workers?.close(SHUTDOWN_DEADLINE_MS / 2);
    await privacy?.stop();
    await queues?.close();
    workerConnection.disconnect();
    apiConnection.disconnect();
    await embedded?.stop();
    // Forensic cleanup once nothing writes any more; Redis data only when the pod owns that Redis.
    if (config.paranoid) await cleanup(config, log, { includeState: embedded !== undefined });
    log.info('stopped');
  };

  try {
    const prefix = options.prefix ?? 'phoenix';
    privacy = await startPrivacy({ config, connection: workerConnection, prefix, log });
    workers = startWorkers({ config, connection: workerConnection, log, prefix, comfyEnv: privacy.comfyEnv });
    await whenReady(apiConnection);
    queues = openQueues(apiConnection, options.prefix);
    board = await startBoard({ config, queues, pod: new PodState(apiConnection, queues.prefix), log });
    // The producer uses the workers' connection, which waits through a Redis hiccup instead of failing.
    const producerQueues = openQueues(workerConnection, queues.prefix);
    await produce({ config, queues: producerQueues, connection: workerConnection, log }).finally(() => producerQueues.close());
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { board, stop };
}
