import { mkdir } from 'node:fs/promises';
import { startBoard, type RunningBoard } from '../board/server.js';
import { isolateThirdPartyCode } from '../comfyui/isolation.js';
import { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { PodCounters } from '../fleet/counters.js';
import type { Logger } from '../lib/log.js';
import { RedisHealth } from '../lib/redis-health.js';
import { startPrivacy, type RunningPrivacy } from '../privacy/service.js';
import { produce } from '../producer/produce.js';
import { openQueues, type Queues } from '../queue/queues.js';
import { startFleetWorkers } from '../workers/fleet.js';
import { startWorkers, type RunningWorkers } from '../workers/index.js';
import { cleanup } from './cleanup.js';
import { chooseRedis, showInFleet, SHARED_REDIS_WAIT_MS, useFleetRecordKey, type FleetPresence } from './fleet.js';
import { watchForLostState } from './recovery.js';
import { EmbeddedRedis, connect, describeTarget, whenReady, type RedisTarget } from './redis.js';
import { SHUTDOWN_DEADLINE_MS, STOP_GRACE, stopOnSignals } from './shutdown.js';

/** Restarts in a row of the embedded redis-server before `phoenix up` gives up and exits 1. */
const REDIS_RESTARTS = 5;

/** Everything `phoenix up` started, stopped in reverse by `stop`. */
export interface Stack {
  board: RunningBoard;
  /** Settles when something the stack cannot run without failed for good (Redis kept dying). */
  failed: Promise<Error>;
  stop(how?: StopHow): Promise<void>;
}

export interface StopHow {
  /** Redis is gone for good: do not wait for anything that needs it. */
  redisGone?: boolean;
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
 * A dead embedded redis-server is restarted; an empty Redis gets this start's jobs again. On a
 * shared Redis the pod also joins the fleet (heartbeat, inbox, leases).
 */
export async function up(config: Config, log: Logger, options: UpOptions = {}): Promise<Stack> {
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  let fail: (err: Error) => void = () => undefined;
  const failed = new Promise<Error>((resolve) => {
    fail = resolve;
  });
  const runAs = await isolateThirdPartyCode(config, log);
  const choice = await chooseRedis(config, log, options.sharedRedisWaitMs ?? SHARED_REDIS_WAIT_MS);
  // The pod's own Redis: the default, and the fallback when the shared one cannot be reached.
  const local = choice.shared
    ? undefined
    : new EmbeddedRedis({
        stateDir: config.stateDir,
        persistent: config.persistentStorage !== undefined,
        log,
        restarts: REDIS_RESTARTS,
        onGiveUp: fail,
      });
  const target: RedisTarget = local ? await local.start() : choice.target;
  const prefix = options.prefix ?? choice.prefix;

  const workerConnection = connect(target, 'worker');
  const apiConnection = connect(target, 'api');
  // The workers' connection speaks for the process in the log; the API's only answers 503s.
  new RedisHealth(workerConnection, describeTarget(target), log);
  const apiHealth = new RedisHealth(apiConnection, describeTarget(target));
  let privacy: RunningPrivacy | undefined;
  let workers: RunningWorkers | undefined;
  let queues: Queues | undefined;
  let board: RunningBoard | undefined;
  let fleet: FleetPresence | undefined;
  let fleetWorkers: { close(): Promise<void> } | undefined;
  let watch: { stop(): void } | undefined;
  const producerQueues = openQueues(workerConnection, prefix);
  const stop = async (how: StopHow = {}): Promise<void> => {
    watch?.stop();
    // Without Redis nothing can finish gracefully: dropping the connections fails what waits on them at once.
    if (how.redisGone) {
      workerConnection.disconnect();
      apiConnection.disconnect();
    }
    await board?.close();
    await fleet?.stop();
    await fleetWorkers?.close();
    await workers?.close(how.redisGone ? 2000 : STOP_GRACE.jobsMs, STOP_GRACE.comfyuiMs);
    await privacy?.stop();
    await Promise.all([queues?.close(), producerQueues.close()]);
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
      redis: apiHealth,
    });
    await workers.deps.comfy.stopLeftover();
    // The producer uses the workers' connection, which waits through a Redis hiccup instead of failing.
    await produce({ config, queues: producerQueues, connection: workerConnection, log });
    watch = watchForLostState({ config, connection: workerConnection, queues: producerQueues, workers, log });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { board, failed, stop };
}

/**
 * `npm start`: runs `up` until a signal stops it (exit 0), or until Redis cannot be kept running:
 * then everything is stopped and the exit code is 1, so whatever supervises Phoenix starts it
 * again, rather than leaving a pod that silently waits for a Redis that will not come back.
 */
export async function runUp(config: Config, log: Logger): Promise<number> {
  const stack = await up(config, log);
  stopOnSignals(() => stack.stop(), log);
  const err = await stack.failed;
  log.fatal({ err: err.message }, 'Phoenix cannot run without Redis: stopping everything and exiting with code 1');
  // A timer that keeps the process alive: it must reach the exit below, not drain out with code 0.
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_DEADLINE_MS));
  await Promise.race([stack.stop({ redisGone: true }).catch(() => undefined), deadline]);
  // Connections to the dead Redis may hold handles open: leave without waiting on them.
  process.exit(1);
}
