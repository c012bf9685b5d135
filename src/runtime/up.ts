import { mkdir } from 'node:fs/promises';
import { startBoard, type RunningBoard } from '../board/server.js';
import { isolateThirdPartyCode } from '../comfyui/isolation.js';
import { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { PodCounters } from '../fleet/counters.js';
import type { Logger } from '../lib/log.js';
import { startPrivacy, type RunningPrivacy } from '../privacy/service.js';
import { produce } from '../producer/produce.js';
import { openQueues, type Queues } from '../queue/queues.js';
import { startFleetWorkers } from '../workers/fleet.js';
import { startWorkers, type RunningWorkers } from '../workers/index.js';
import { cleanup } from './cleanup.js';
import { chooseRedis, showInFleet, SHARED_REDIS_WAIT_MS, useFleetRecordKey, type FleetPresence } from './fleet.js';
import { EmbeddedRedis, connect, whenReady, type RedisTarget } from './redis.js';
import { STOP_GRACE } from './shutdown.js';

/** Everything `phoenix up` started, stopped in reverse by `stop`. */
export interface Stack {
  board: RunningBoard;
  stop(): Promise<void>;
}

export interface UpOptions {
  /** BullMQ prefix of the pod's queues (tests use their own); defaults to the configuration's. */
  prefix?: string;
  /** How long to wait for a shared Redis before provisioning alone. */
  sharedRedisWaitMs?: number;
}

/**
 * `phoenix up`: the pod's whole process tree without supervisord — an embedded Redis (unless
 * REDIS_URL), the workers, the board server and the producer; ComfyUI follows its dependencies.
 * On a shared Redis the pod also joins the fleet (heartbeat, inbox, leases).
 */
export async function up(config: Config, log: Logger, options: UpOptions = {}): Promise<Stack> {
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const runAs = await isolateThirdPartyCode(config, log);
  const choice = await chooseRedis(config, log, options.sharedRedisWaitMs ?? SHARED_REDIS_WAIT_MS);
  // The pod's own Redis: the default, and the fallback when the shared one cannot be reached.
  const local = choice.shared ? undefined : new EmbeddedRedis({ stateDir: config.stateDir, persistent: config.persistentStorage !== undefined, log });
  const target: RedisTarget = local ? await local.start() : choice.target;
  const prefix = options.prefix ?? choice.prefix;

  const workerConnection = connect(target, 'worker');
  const apiConnection = connect(target, 'api');
  for (const c of [workerConnection, apiConnection]) c.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  let privacy: RunningPrivacy | undefined;
  let workers: RunningWorkers | undefined;
  let queues: Queues | undefined;
  let board: RunningBoard | undefined;
  let fleet: FleetPresence | undefined;
  let fleetWorkers: { close(): Promise<void> } | undefined;
  const stop = async (): Promise<void> => {
    await board?.close();
    await fleet?.stop();
    await fleetWorkers?.close();
    await workers?.close(STOP_GRACE.jobsMs, STOP_GRACE.comfyuiMs);
    await privacy?.stop();
    await queues?.close();
    workerConnection.disconnect();
    apiConnection.disconnect();
    await local?.stop();
    // Forensic cleanup once nothing writes any more; Redis data only when the pod owns that Redis.
    if (config.paranoid) await cleanup(config, log, { includeState: local !== undefined, runAs });
    log.info('stopped');
  };

  try {
    if (choice.shared) await useFleetRecordKey(config, workerConnection);
    privacy = await startPrivacy({ config, connection: workerConnection, prefix, log });
    workers = startWorkers({
      config,
      connection: workerConnection,
      log,
      prefix,
      comfyEnv: privacy.comfyEnv,
      runAs,
      ...(choice.shared ? { coordination: apiConnection } : {}),
    });
    await whenReady(apiConnection);
    queues = openQueues(apiConnection, prefix);
    const pod = new PodState(apiConnection, queues.prefix);
    if (choice.shared) {
      fleet = showInFleet({ config, connection: apiConnection, queues, pod, log });
      fleetWorkers = startFleetWorkers({ config, connection: workerConnection, log, queues });
    }
    board = await startBoard({
      config,
      queues,
      pod,
      counters: new PodCounters(apiConnection, queues.prefix),
      ...(fleet?.board ? { fleet: fleet.board } : {}),
      log,
    });
    // The producer uses the workers' connection, which waits through a Redis hiccup instead of failing.
    const producerQueues = openQueues(workerConnection, queues.prefix);
    await produce({ config, queues: producerQueues, connection: workerConnection, log }).finally(() => producerQueues.close());
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { board, stop };
}
