import type { Job } from 'bullmq';
import type { PodState } from '../comfyui/pod-state.js';
import type { ComfyProcess } from '../comfyui/process.js';
import type { Config } from '../config/index.js';
import type { Logger, Redactor } from '../lib/log.js';
import type { VerifiedRecord } from '../organize/record.js';
import type { JobName, JobPayloads } from '../queue/jobs.js';

/** What every processor may use; built once per workers process. */
export interface WorkerDeps {
  config: Config;
  log: Logger;
  /** Scrubs secret values from anything written to Redis (job logs, failure reasons). */
  redactor: Redactor;
  record: VerifiedRecord;
  pod: PodState;
  comfy: ComfyProcess;
}

/**
 * A processor for one job name. `data` is the job's payload as its schema parsed it: handlers read
 * it, never the raw `job.data` (anyone with Redis access can write that). `signal` aborts when this
 * run lost its job's lock (another run may have the job now): long work stops on it.
 */
export type Handler<N extends JobName> = (job: Job<unknown>, data: JobPayloads[N], deps: WorkerDeps, signal?: AbortSignal) => Promise<unknown>;

/** A child logger bound to one job, as every processor logs. */
export function jobLogger(deps: WorkerDeps, job: Job): Logger {
  return deps.log.child({ queue: job.queueName, job: job.id });
}
