import path from 'node:path';
import { UnrecoverableError, Worker, type Job, type WorkerOptions } from 'bullmq';
import { PodState } from '../comfyui/pod-state.js';
import { ComfyProcess } from '../comfyui/process.js';
import type { Config } from '../config/index.js';
import { PodCounters } from '../fleet/counters.js';
import { Leases } from '../fleet/lease.js';
import { TransientError, UserError } from '../lib/errors.js';
import { Redactor, type Logger } from '../lib/log.js';
import type { RedisClient } from '../lib/redis-client.js';
import { isConnectionError } from '../lib/redis-health.js';
import { sameUser, type RunAs } from '../lib/run-as.js';
import { KeyedMutex } from '../lib/serial.js';
import { lazyMirror } from '../mirror/lazy.js';
import { RECORD_KEY_FILE } from '../organize/record-key.js';
import { VerifiedRecord } from '../organize/record.js';
import { eventSender } from '../queue/events.js';
import { JOB_QUEUE, JOB_SCHEMAS, JobName, QUEUE_NAMES, type ModelJobData, type OrganizeResult, type QueueName } from '../queue/jobs.js';
import { openQueues } from '../queue/queues.js';
import type { Handler, WorkerDeps } from './context.js';
import { downloadModel } from './download.js';
import { Notifier } from './events.js';
import { installCustomNode, installExtraPythonPackages } from './nodes.js';
import { organizeModel } from './organize.js';
import { NodeReloader } from './reload.js';
import { startComfyUI, type ServiceResult } from './service.js';
import { deliverWebhook } from './webhook.js';

export type HandlerTable = { [N in JobName]: Handler<N> };

/** Every job name has exactly one handler: the compiler checks it, and so does boot. */
const HANDLERS: HandlerTable = {
  [JobName.DownloadModel]: downloadModel,
  [JobName.OrganizeModel]: organizeModel,
  [JobName.InstallNode]: installCustomNode,
  [JobName.InstallPythonPackages]: installExtraPythonPackages,
  [JobName.StartComfyUI]: startComfyUI,
  [JobName.DeliverWebhook]: deliverWebhook,
};

export interface WorkersOptions {
  config: Config;
  /** A connection with maxRetriesPerRequest: null; the workers duplicate it for blocking reads. */
  connection: RedisClient;
  log: Logger;
  prefix: string;
  /** ComfyUI's restart backoff, and how long it must stay healthy for the backoff to start over (tests shorten them). */
  comfyBackoffMs?: number;
  comfyHealthyResetMs?: number;
  /** How long the nodes queue stays empty before ComfyUI restarts for new nodes (tests shorten it). */
  reloadQuietMs?: number;
  /** ComfyUI's environment with privacy's proxy (startPrivacy); config.comfyui.env when absent. */
  comfyEnv?: Readonly<Record<string, string>>;
  /**
   * A fail-fast connection (see runtime/redis connect 'api') for the fleet's leases: when the
   * shared Redis cannot be reached, downloads go on from their origins instead of waiting.
   */
  coordination?: RedisClient;
  /**
   * The user ComfyUI, git, pip and install.py run as (detectRunAs over COMFYUI_USER, after
   * prepareComfyFolders). May be left out only when COMFYUI_USER is not set.
   */
  runAs?: RunAs;
}

export interface RunningWorkers {
  deps: WorkerDeps;
  /** Stops taking jobs and ComfyUI (SIGKILL after `comfyuiGraceMs`), and waits for active jobs up to the deadline. */
  close(deadlineMs?: number, comfyuiGraceMs?: number): Promise<void>;
  /**
   * Cancels every run under way and waits (up to the deadline) until they end: Redis lost their
   * jobs, which are about to be enqueued again and must not run twice at once.
   */
  abandonRuns(reason: string, deadlineMs?: number): Promise<void>;
}

/**
 * Locks and the stalled-job check. A job whose worker died (SIGKILL, OOM) is taken up again once
 * its lock lapses: within LOCK_MS + 2 × STALLED_CHECK_MS. A Redis restart or a workers restart
 * may each stall a job once; MAX_STALLED allows both before a job is failed for it.
 */
const LOCK_MS = 15_000;
const STALLED_CHECK_MS = 5_000;
const MAX_STALLED = 2;

export function startWorkers(options: WorkersOptions): RunningWorkers {
  const { config, connection, log, prefix } = options;
  for (const name of Object.values(JobName)) {
    if (typeof HANDLERS[name] !== 'function') throw new Error(`no handler for job ${name}`);
  }
  if (!options.runAs && config.comfyui.user) throw new Error('COMFYUI_USER is set: detect how to run as that user (detectRunAs) before starting the workers');
  const runAs = options.runAs ?? sameUser('COMFYUI_USER is not set');
  const pod = new PodState(connection, prefix);
  pod.setIsolation(runAs.status).catch((err: Error) => log.error({ err: err.message }, 'cannot record the isolation status'));
  const queues = openQueues(connection, prefix);
  const redactor = new Redactor(config.secrets);
  // Events are only worth gathering when there is a webhook to tell.
  const notifier = config.webhook ? new Notifier(config, queues, pod, eventSender(queues.queue.webhooks, redactor, log), log) : undefined;
  const comfyEnv = options.comfyEnv ?? config.comfyui.env;
  const comfy = new ComfyProcess({
    python: config.comfyui.python,
    comfyuiDir: config.comfyui.dir,
    host: config.comfyui.listen.host,
    port: config.comfyui.listen.port,
    portVariable: config.comfyui.listen.variable,
    pidFile: path.join(config.stateDir, 'comfyui.pid'),
    env: comfyEnv,
    runAs,
    log: log.child({ component: 'comfyui' }),
    // ComfyUI's own output is shown in /status: scrubbed like everything else that reaches Redis.
    // Not awaited: while Redis is away the write waits for it, and ComfyUI's care must not.
    onStatus: (status) => {
      void pod
        .setComfy({ ...status, error: status.error && redactor.redact(status.error), lastOutput: status.lastOutput.map((l) => redactor.redact(l)) })
        .catch((err: Error) => log.debug({ err: err.message }, 'cannot record ComfyUI state'));
      notifier?.comfyStatus(status);
    },
    onEvent: (event) => notifier?.comfyEvent(event),
    ...(options.comfyBackoffMs !== undefined ? { backoffMs: options.comfyBackoffMs } : {}),
    ...(options.comfyHealthyResetMs !== undefined ? { healthyResetMs: options.comfyHealthyResetMs } : {}),
  });
  const mirror = config.mirror ? lazyMirror(config.mirror) : undefined;
  const deps: WorkerDeps = {
    config,
    log,
    redactor,
    record: new VerifiedRecord(config.modelsRoot, path.join(config.stateDir, RECORD_KEY_FILE), log),
    pod,
    comfy,
    runAs,
    reloader: new NodeReloader(comfy, queues.queue.nodes, log, options.reloadQuietMs),
    comfyEnv,
    fleet: {
      leases: config.fleet.shared && options.coordination ? new Leases(options.coordination, config.fleet.fleetPrefix, config.fleet.podId) : undefined,
      mirror,
      counters: new PodCounters(connection, prefix),
    },
  };

  const concurrency: Record<QueueName, number> = {
    download: config.download.concurrency,
    organize: 2,
    nodes: 2,
    service: 1,
    webhooks: 4,
  };
  // A job runs at most once at a time in this process, even when BullMQ hands it out again while
  // an earlier run goes on (its lock lapsed during a Redis outage): the new run waits for the old
  // one. Runs whose jobs Redis lost are cancelled before those jobs are enqueued again
  // (abandonRuns), and a run whose lock renewal is refused is cancelled too.
  const running = new KeyedMutex();
  const underWay = new Set<Promise<unknown>>();
  const workers = QUEUE_NAMES.map((queueName) => {
    const opts: WorkerOptions = {
      connection,
      prefix,
      concurrency: concurrency[queueName],
      lockDuration: LOCK_MS,
      stalledInterval: STALLED_CHECK_MS,
      maxStalledCount: MAX_STALLED,
      settings: { backoffStrategy },
    };
    const worker = new Worker(
      queueName,
      (job: Job, _token?: string, signal?: AbortSignal) => {
        const run = running.run(`${queueName}:${job.id}`, () => dispatch(job, queueName, deps, HANDLERS, signal));
        underWay.add(run);
        void run.catch(() => undefined).finally(() => underWay.delete(run));
        return run;
      },
      opts,
    );
    worker.on('lockRenewalFailed', (ids: string[]) => {
      for (const id of ids) {
        log.warn({ queue: queueName, job: id }, 'lost the lock of a running job (Redis lost it or handed the job out again): cancelling this run');
        worker.cancelJob(id, 'the job\'s lock is gone');
      }
    });
    worker.on('error', (err) => {
      // Redis being away is logged once by the connection's RedisHealth, not once per reconnect attempt.
      if (isConnectionError(err) || /could not renew lock/.test(err.message)) log.debug({ queue: queueName, err: err.message }, 'worker error');
      else if (LOST_JOB.test(err.message)) log.warn({ queue: queueName, err: err.message }, 'a run ended after Redis lost or handed out its job again: its result is dropped, the job runs again');
      else log.error({ queue: queueName, err: deps.redactor.redact(err.message) }, 'worker error');
    });
    worker.on('failed', (job, err) => {
      const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError;
      log[final ? 'error' : 'warn'](
        { queue: queueName, job: job?.id, attempt: job?.attemptsMade, err: err.message },
        final ? 'job failed for good' : 'job failed; will retry',
      );
      if (final && job && notifier) notifyFailure(notifier, job, err.message);
    });
    if (notifier) worker.on('completed', (job, result) => notifyCompletion(notifier, job, result));
    return worker;
  });

  return {
    deps,
    async close(deadlineMs = 15_000, comfyuiGraceMs = 10_000) {
      deps.reloader.stop();
      notifier?.stop();
      // Without Redis a graceful close never ends (and a forced one after it returns the same
      // promise): then the workers are closed forcibly from the start.
      const closing = Promise.all(workers.map((w) => w.close(connection.status !== 'ready')));
      // ComfyUI stops at once: a service job waiting for its start must not hold the close up.
      const comfyStopped = comfy.stop(comfyuiGraceMs);
      if (!(await settlesWithin(closing, deadlineMs))) {
        log.warn({ deadlineMs }, 'active jobs did not finish in time; they run again on the next start');
      }
      await comfyStopped;
      await queues.close();
      mirror?.close();
    },
    async abandonRuns(reason, deadlineMs = 10_000) {
      if (underWay.size === 0) return;
      log.warn({ runs: underWay.size, reason }, 'cancelling the runs under way');
      for (const w of workers) w.cancelAllJobs(reason);
      if (!(await settlesWithin(Promise.allSettled([...underWay]), deadlineMs))) {
        log.warn({ deadlineMs }, 'some runs did not end in time; their jobs wait for them');
      }
    },
  };
}

/** BullMQ's refusals when a run ends whose job Redis no longer has, or has handed to another run. */
const LOST_JOB = /Missing key for job|Missing lock for job|Lock mismatch for job/;

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function notifyCompletion(notifier: Notifier, job: Job, result: unknown): void {
  if (job.name === JobName.OrganizeModel) notifier.modelReady(job as Job<ModelJobData>, result as OrganizeResult);
  else if (job.name === JobName.InstallNode) notifier.workflowsMayHaveChanged();
  else if (job.name === JobName.StartComfyUI) notifier.podReady((result as ServiceResult).pid ?? null);
}

function notifyFailure(notifier: Notifier, job: Job, reason: string): void {
  if (job.name === JobName.OrganizeModel) notifier.modelFailed(job as Job<ModelJobData>, reason);
  else if (job.name === JobName.InstallNode) notifier.workflowsMayHaveChanged();
}

/**
 * Runs the job's handler after validating its payload, and maps errors to BullMQ's behaviours:
 * a UserError skips the remaining attempts; everything is rethrown (never swallowed) with secret
 * values scrubbed, since the failure reason is stored in Redis.
 */
export async function dispatch(
  job: Job,
  queueName: QueueName,
  deps: WorkerDeps,
  handlers: HandlerTable = HANDLERS,
  signal?: AbortSignal,
): Promise<unknown> {
  const name = job.name as JobName;
  const handler = handlers[name] as Handler<JobName> | undefined;
  if (!handler || JOB_QUEUE[name] !== queueName) throw new UnrecoverableError(`no handler for ${job.name} on ${queueName}`);
  const payload = JOB_SCHEMAS[name].safeParse(job.data);
  if (!payload.success) throw new UnrecoverableError(`invalid job data: ${payload.error.message}`);
  try {
    // The schema of `name` parsed the payload of `name`: TypeScript cannot relate the two here.
    return await handler(job, payload.data as never, deps, signal);
  } catch (err) {
    throw scrub(err, deps.redactor);
  }
}

function scrub(err: unknown, redactor: Redactor): Error {
  if (err instanceof UserError) return new UnrecoverableError(redactor.redact(err.message));
  if (err instanceof Error) {
    err.message = redactor.redact(err.message);
    if (err.stack) err.stack = redactor.redact(err.stack);
    return err;
  }
  return new Error(redactor.redact(String(err)));
}

/** Exponential backoff with jitter, or the server's Retry-After when it gave one. */
export function backoffStrategy(attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof TransientError && err.retryAfterMs !== undefined) return Math.min(err.retryAfterMs, 15 * 60_000);
  const base = Math.min(60_000, 2000 * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(base * (0.5 + Math.random()));
}
