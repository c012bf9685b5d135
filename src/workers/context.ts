import type { Job } from 'bullmq';
import type { PodState } from '../comfyui/pod-state.js';
import type { ComfyProcess } from '../comfyui/process.js';
import type { Config } from '../config/index.js';
import { modelId } from '../config/model-spec.js';
import type { PodCounters } from '../fleet/counters.js';
import type { Leases } from '../fleet/lease.js';
import { UserError } from '../lib/errors.js';
import type { Logger, Redactor } from '../lib/log.js';
import type { RunAs } from '../lib/run-as.js';
import type { LazyMirror } from '../mirror/lazy.js';
import type { VerifiedRecord } from '../organize/record.js';
import type { JobName, JobPayloads, ModelJobData } from '../queue/jobs.js';
import type { NodeReloader } from './reload.js';

/** What every processor may use; built once per workers process. */
export interface WorkerDeps {
  config: Config;
  log: Logger;
  /** Scrubs secret values from anything written to Redis (job logs, failure reasons). */
  redactor: Redactor;
  record: VerifiedRecord;
  pod: PodState;
  comfy: ComfyProcess;
  /** Restarts ComfyUI once for custom nodes that arrive after it started. */
  reloader: NodeReloader;
  /** The environment of ComfyUI, git, pip and install.py: config.comfyui.env plus privacy's proxy. */
  comfyEnv: Readonly<Record<string, string>>;
  fleet: {
    /** Fleet-wide leases (a shared Redis); undefined on the pod's own Redis. */
    leases: Leases | undefined;
    mirror: LazyMirror | undefined;
    counters: PodCounters;
  };
  /** The user ComfyUI, git, pip and install.py run as. */
  runAs: RunAs;
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

/**
 * The id of a model job, derived from its spec. Job data can be written by anyone who reaches
 * Redis: an id that does not match the spec beside it (one that borrows another model's secret
 * headers, or carries `..`) is refused, never used to pick headers or build paths.
 */
export function trustedModelId(data: ModelJobData): string {
  const id = modelId(data.spec);
  if (data.id !== id) throw new UserError(`job data names model "${data.id}" but its spec is model ${id}: refusing a forged or stale job`);
  return id;
}
