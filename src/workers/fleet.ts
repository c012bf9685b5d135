import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Config, ConfiguredModel } from '../config/index.js';
import { ModelSpec } from '../config/model-spec.js';
import type { Logger } from '../lib/log.js';
import { isConnectionError } from '../lib/redis-health.js';
import type { RedisClient } from '../lib/redis-client.js';
import { enqueueModels } from '../producer/produce.js';
import {
  FleetModelsData,
  FleetQueueName,
  PodModelsData,
  inboxQueueName,
  type FleetModelsResult,
  type PodModelsResult,
} from '../queue/fleet.js';
import { jobIds } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';

export interface FleetWorkersOptions {
  config: Config;
  /** A connection with maxRetriesPerRequest: null. */
  connection: RedisClient;
  log: Logger;
  /** The pod's own queues, where its inbox puts the models; omitted by a board that is no pod. */
  queues?: Queues;
}

const POLL_MS = 1000;

/**
 * The fleet's workers on one process: the pod's inbox (models the fleet adds to this pod) and the
 * fleet queue (a fleet addition's summary once every pod answered). Any pod, and a fleet board,
 * may run the latter.
 */
export function startFleetWorkers(options: FleetWorkersOptions): { close(): Promise<void> } {
  const { config, connection, log } = options;
  const prefix = config.fleet.fleetPrefix;
  const workers: Worker[] = [new Worker(FleetQueueName.Fleet, summarise, { connection, prefix, concurrency: 4 })];
  const queues = options.queues;
  if (queues) {
    const inbox = (job: Job) => addToPod(job, config, queues);
    workers.push(new Worker(inboxQueueName(config.fleet.podId), inbox, { connection, prefix, concurrency: 4 }));
  }
  // Redis being away is logged once by the connection's RedisHealth, not once per reconnect attempt.
  for (const w of workers) {
    w.on('error', (err) => log[isConnectionError(err) ? 'debug' : 'error']({ queue: w.name, err: err.message }, 'fleet worker error'));
  }
  return {
    // An inbox job only waits on the pod's own jobs and is safe to run again: no need to wait for it.
    async close() {
      await Promise.all(workers.map((w) => w.close(true)));
    },
  };
}

/** A pod's part of a fleet addition: enqueue the models here, complete once each is ready or failed. */
async function addToPod(job: Job, config: Config, queues: Queues): Promise<PodModelsResult> {
  const data = PodModelsData.safeParse(job.data);
  if (!data.success) throw new UnrecoverableError(`invalid fleet job data: ${data.error.message}`);
  const models: ConfiguredModel[] = data.data.models.map((m) => {
    const spec = ModelSpec.safeParse(m.spec);
    if (!spec.success) throw new UnrecoverableError(`invalid model in a fleet job: ${spec.error.message}`);
    return { origin: m.origin, spec: spec.data };
  });
  const enqueued = await enqueueModels(config, queues, models);
  for (;;) {
    const states = await Promise.all(
      enqueued.map(async (m) => {
        const organize = await queues.queue.organize.getJob(jobIds.organize(m.id));
        const state = organize ? await organize.getState() : 'unknown';
        return { id: m.id, state, error: state === 'failed' ? organize?.failedReason ?? null : null };
      }),
    );
    const ready = states.filter((s) => s.state === 'completed').length;
    await job.updateProgress({ ready, total: states.length });
    if (states.every((s) => s.state === 'completed' || s.state === 'failed')) {
      return {
        pod: config.fleet.podId,
        models: states.map((s) => ({ id: s.id, state: s.state === 'completed' ? 'ready' : 'failed', error: s.error })),
      };
    }
    await sleep(POLL_MS);
  }
}

/** The fleet job: what every pod reported, and the pods that could not take part. */
async function summarise(job: Job): Promise<FleetModelsResult> {
  if (!FleetModelsData.safeParse(job.data).success) throw new UnrecoverableError('invalid fleet job data');
  const values = await job.getChildrenValues<PodModelsResult>();
  const failures = await job.getIgnoredChildrenFailures();
  return {
    pods: Object.values(values).sort((a, b) => a.pod.localeCompare(b.pod)),
    // Keys name the child job (`<prefix>:inbox-<pod>:<fleet job id>-<pod>`): report them by pod.
    failed: Object.fromEntries(Object.entries(failures).map(([key, reason]) => [key.split(':').pop()!.replace(`${job.id}-`, ''), reason])),
  };
}
