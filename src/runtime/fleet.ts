import path from 'node:path';
import { FleetBoardQueues } from '../board/fleet-board.js';
import { startHeartbeat } from '../board/heartbeat.js';
import type { BoardOptions } from '../board/server.js';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { adoptFleetRecordKey } from '../fleet/record-key.js';
import { PodRegistry } from '../fleet/registry.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { RedisClient } from '../lib/redis-client.js';
import { RecordKey, RECORD_KEY_FILE } from '../organize/record-key.js';
import { openFleetQueues } from '../queue/fleet.js';
import type { Queues } from '../queue/queues.js';
import { connect, redisTarget, socketPath, whenReady, type RedisTarget } from './redis.js';

/** How long a pod waits for the shared Redis at start before it provisions alone. */
export const SHARED_REDIS_WAIT_MS = 15_000;

export interface RedisChoice {
  target: RedisTarget;
  /** On the fleet's shared Redis; false when this pod runs on its own one. */
  shared: boolean;
  /** BullMQ prefix of this pod's queues there. */
  prefix: string;
}

/**
 * Where this pod's queues live: the shared Redis when it answers; else the pod's own Redis on
 * its unix socket, with the fleet's features off until the next start, so that the models still
 * come from their origins and nothing waits for a Redis that is not there.
 */
export async function chooseRedis(config: Config, log: Logger, waitMs = SHARED_REDIS_WAIT_MS): Promise<RedisChoice> {
  if (!config.fleet.shared) return { target: redisTarget(config), shared: false, prefix: config.fleet.queuePrefix };
  const probe = connect(redisTarget(config), 'api');
  probe.on('error', () => undefined);
  try {
    await whenReady(probe, waitMs);
    await probe.ping();
    return { target: redisTarget(config), shared: true, prefix: config.fleet.queuePrefix };
  } catch (err) {
    log.error(
      { err: errorMessage(err), waitedSeconds: waitMs / 1000 },
      'the shared Redis cannot be reached: this pod provisions alone on its own Redis (fleet features off until it restarts)',
    );
    return { target: { path: socketPath(config.stateDir) }, shared: false, prefix: 'phoenix' };
  } finally {
    probe.disconnect();
  }
}

export interface FleetPresence {
  /** What the board needs for the fleet page and API (PHOENIX_FLEET only). */
  board: BoardOptions['fleet'];
  stop(): Promise<void>;
}

/**
 * This pod as the fleet sees it, from the process that serves its board: its heartbeat in the
 * registry and, with PHOENIX_FLEET, the fleet page and API. (The workers' process runs the pod's
 * inbox and its share of the fleet queue: workers/fleet.ts.)
 */
export function showInFleet(options: { config: Config; connection: RedisClient; queues: Queues; pod: PodState; log: Logger }): FleetPresence {
  const { config, connection, log } = options;
  const registry = new PodRegistry(connection, config.fleet.fleetPrefix);
  const heartbeat = startHeartbeat({ config, queues: options.queues, pod: options.pod, registry, log });
  const board = config.fleet.board ? fleetBoardParts(connection, registry, config, log) : undefined;
  log.info({ pod: config.fleet.podId, labels: config.fleet.labels, fleetBoard: config.fleet.board }, 'joined the fleet');
  return {
    board: board?.parts,
    async stop() {
      await heartbeat.stop();
      await board?.close();
    },
  };
}

/** What a board needs to show the fleet: the registry, the fleet's queues, every pod's queues. */
export function fleetBoardParts(
  connection: RedisClient,
  registry: PodRegistry,
  config: Config,
  log: Logger,
): { parts: NonNullable<BoardOptions['fleet']>; close(): Promise<void> } {
  const queues = openFleetQueues(connection, config.fleet.fleetPrefix);
  const boardQueues = new FleetBoardQueues(connection, registry, queues, log);
  return {
    parts: { registry, queues, boardQueues },
    async close() {
      await boardQueues.close();
      await queues.close();
    },
  };
}

/** On a shared Redis, the pod signs the verified-files record with the fleet's key (fleet/record-key.ts). */
export async function useFleetRecordKey(config: Config, connection: RedisClient): Promise<void> {
  await adoptFleetRecordKey(connection, config.fleet.fleetPrefix, new RecordKey(path.join(config.stateDir, RECORD_KEY_FILE)));
}
