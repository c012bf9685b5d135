import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import type { RedisClient } from '../lib/redis-client.js';
import { produce, provisionedKey } from '../producer/produce.js';
import type { Queues } from '../queue/queues.js';
import type { RunningWorkers } from '../workers/index.js';

export interface RecoveryOptions {
  config: Config;
  /** The workers' connection: it waits through an outage instead of failing. */
  connection: RedisClient;
  queues: Queues;
  workers: RunningWorkers;
  log: Logger;
  /** How often to look, besides each reconnect. Default 5 s. */
  intervalMs?: number;
}

/**
 * Redis that comes back without its data (no persistence, a new external Redis, a flush) has
 * forgotten this start's flow: the producer's mark is gone. Each time the connection is ready
 * again, and every few seconds, the workers look for that mark; when it is missing they end the
 * runs of the lost jobs, tell Redis ComfyUI's state again and re-run the producer, which enqueues
 * every configured model and node and the runtime additions. The jobs check the disk first: verified files are not downloaded
 * again, partial ones resume from their sidecars, and ComfyUI, already running, is not restarted.
 * Start it after the first producer run of this process.
 */
export function watchForLostState(options: RecoveryOptions): { stop(): void } {
  const { config, connection, queues, workers, log } = options;
  let checking = false;
  const check = async (): Promise<void> => {
    if (checking || connection.status !== 'ready') return;
    checking = true;
    try {
      if ((await connection.exists(provisionedKey(queues.prefix))) === 1) return;
      log.warn("Redis no longer holds this start's jobs (restarted without persistence, or another Redis): provisioning again from what is on disk");
      // Runs of the lost jobs are ended first, so that none overlaps the same job enqueued again.
      await workers.abandonRuns("Redis lost this run's job");
      await workers.deps.comfy.republish();
      const result = await produce({ config, queues, connection, log });
      log.info({ action: result.action, jobs: result.jobIds.length }, "this start's jobs are back in Redis");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not restore this start's jobs in Redis yet; trying again");
    } finally {
      checking = false;
    }
  };
  const onReady = (): void => void check();
  connection.on('ready', onReady);
  const timer = setInterval(onReady, options.intervalMs ?? 5000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      connection.off('ready', onReady);
    },
  };
}
