import { startBoard } from '../board/server.js';
import { isolateThirdPartyCode } from '../comfyui/isolation.js';
import { PodState } from '../comfyui/pod-state.js';
import { ConfigError, type Config } from '../config/index.js';
import { PodCounters } from '../fleet/counters.js';
import { PodRegistry } from '../fleet/registry.js';
import type { Logger } from '../lib/log.js';
import { RedisHealth } from '../lib/redis-health.js';
import { startPrivacy } from '../privacy/service.js';
import { produce } from '../producer/produce.js';
import { openQueues } from '../queue/queues.js';
import { startFleetWorkers } from '../workers/fleet.js';
import { startWorkers } from '../workers/index.js';
import { cleanup } from './cleanup.js';
import { chooseRedis, fleetBoardParts, showInFleet, useFleetRecordKey } from './fleet.js';
import { watchForLostState } from './recovery.js';
import { EmbeddedRedis, connect, describeTarget, redisTarget, whenReady } from './redis.js';
import { STOP_GRACE, stopOnSignals } from './shutdown.js';

/**
 * The pod's programs one at a time, as supervisord runs them in the image (`phoenix up` runs them
 * all in one process tree instead). Each returns its exit code, or never returns while it serves.
 */

/** `phoenix produce`: enqueues this start's flow and exits. */
export async function runProduce(config: Config, log: Logger): Promise<number> {
  const choice = await chooseRedis(config, log);
  const connection = connect(choice.target, 'worker');
  const queues = openQueues(connection, choice.prefix);
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
  const runAs = await isolateThirdPartyCode(config, log);
  const choice = await chooseRedis(config, log);
  const connection = connect(choice.target, 'worker');
  new RedisHealth(connection, describeTarget(choice.target), log);
  const coordination = choice.shared ? connect(choice.target, 'api') : undefined;
  coordination?.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  if (choice.shared) await useFleetRecordKey(config, connection);
  const privacy = await startPrivacy({ config, connection, prefix: choice.prefix, log });
  const workers = startWorkers({
    config,
    connection,
    log,
    prefix: choice.prefix,
    comfyEnv: privacy.comfyEnv,
    runAs,
    ...(coordination ? { coordination } : {}),
  });
  const queues = openQueues(connection, choice.prefix);
  const fleetWorkers = choice.shared ? startFleetWorkers({ config, connection, log, queues }) : undefined;
  let watch: { stop(): void } | undefined;
  stopOnSignals(async () => {
    watch?.stop();
    await fleetWorkers?.close();
    await workers.close(STOP_GRACE.jobsMs, STOP_GRACE.comfyuiMs);
    await privacy.stop();
    await queues.close();
    connection.disconnect();
    coordination?.disconnect();
    if (config.paranoid) await cleanup(config, log, { includeState: false, runAs });
  }, log);
  await workers.deps.comfy.stopLeftover();
  await produce({ config, queues, connection, log });
  watch = watchForLostState({ config, connection, queues, workers, log });
  return forever();
}

/** `phoenix board`: Bull Board, /status and the API; 503 with the reason while Redis is away. */
export async function runBoard(config: Config, log: Logger): Promise<number> {
  const choice = await chooseRedis(config, log);
  const connection = connect(choice.target, 'api');
  const health = new RedisHealth(connection, describeTarget(choice.target), log);
  await whenReady(connection, 120_000);
  const queues = openQueues(connection, choice.prefix);
  const pod = new PodState(connection, queues.prefix);
  const fleet = choice.shared ? showInFleet({ config, connection, queues, pod, log }) : undefined;
  const board = await startBoard({
    config,
    queues,
    pod,
    counters: new PodCounters(connection, queues.prefix),
    ...(fleet?.board ? { fleet: fleet.board } : {}),
    log,
    redis: health,
  });
  stopOnSignals(async () => {
    await board.close();
    await fleet?.stop();
    await queues.close();
    connection.disconnect();
  }, log);
  return forever();
}

/**
 * `phoenix board --fleet`: the fleet board alone (on a laptop, against the shared Redis): every
 * pod's queues, the fleet page and API, and /metrics for the fleet. It is no pod: no /status.
 */
export async function runFleetBoard(config: Config, log: Logger): Promise<number> {
  if (!config.fleet.shared) throw new ConfigError(['REDIS_URL: `phoenix board --fleet` needs the fleet\'s shared Redis (set REDIS_URL or REDIS_CLUSTER)']);
  const target = redisTarget(config);
  const connection = connect(target, 'api');
  const workerConnection = connect(target, 'worker');
  for (const c of [connection, workerConnection]) c.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  await whenReady(connection, 120_000);
  const summaries = startFleetWorkers({ config, connection: workerConnection, log });
  const fleet = fleetBoardParts(connection, new PodRegistry(connection, config.fleet.fleetPrefix), config, log);
  const board = await startBoard({ config, fleet: fleet.parts, log });
  stopOnSignals(async () => {
    await board.close();
    await summaries.close();
    await fleet.close();
    connection.disconnect();
    workerConnection.disconnect();
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
