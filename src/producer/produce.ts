import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FlowJob } from 'bullmq';
import { PodState } from '../comfyui/pod-state.js';
import { isHealthy } from '../comfyui/process.js';
import type { Config, ConfiguredModel } from '../config/index.js';
import type { NodeSpec } from '../config/nodes.js';
import type { Logger } from '../lib/log.js';
import type { RedisClient } from '../lib/redis-client.js';
import { KeyedMutex } from '../lib/serial.js';
import { RECORD_KEY_FILE } from '../organize/record-key.js';
import { VerifiedRecord } from '../organize/record.js';
import { SERVICE_JOB_ID, type QueueName } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { RuntimeAdditions } from './additions.js';
import { bootPlan, flowJobIds, flowJobs, modelFlow, nodeJob } from './flow.js';
import { downloadPriorities } from './priorities.js';

export interface ProduceOptions {
  config: Config;
  queues: Queues;
  connection: RedisClient;
  log: Logger;
  /** Whether ComfyUI answers right now (decides "same boot" versus "new boot"). */
  isComfyHealthy?: () => Promise<boolean>;
}

export interface ProduceResult {
  /** `started`: a new boot's flow was enqueued; `unchanged`: this boot's flow is already there. */
  action: 'started' | 'unchanged';
  jobIds: string[];
}

/**
 * Enqueues one FlowProducer flow per pod start. Idempotent: job ids are deterministic, and while
 * this start's service job is pending, or done with ComfyUI answering, a second run adds nothing.
 * After a restart (service job finished, ComfyUI not running) the previous flow is replaced:
 * processors check the disk, so models already verified are not downloaded again.
 */
export async function produce(options: ProduceOptions): Promise<ProduceResult> {
  const { config, queues, connection, log } = options;
  return withLock(connection, `${queues.prefix}:produce-lock`, async () => {
    const service = await queues.queue.service.getJob(SERVICE_JOB_ID);
    if (service) {
      const state = await service.getState();
      const finished = state === 'completed' || state === 'failed';
      if (!finished || (await (options.isComfyHealthy ?? (() => isHealthy(config.comfyui.listen.port)))())) {
        log.info({ state }, 'this start is already provisioned or provisioning: nothing to enqueue');
        await markProvisioned(connection, queues.prefix);
        return { action: 'unchanged', jobIds: [] };
      }
      await service.remove({ removeChildren: true }).catch((err: Error) => {
        log.warn({ err: err.message }, 'could not remove the previous start\'s flow whole');
      });
    }
    const plan = bootPlan(config, await downloadPriorities(config, new VerifiedRecord(config.modelsRoot, path.join(config.stateDir, RECORD_KEY_FILE)), log));
    const flows = [plan.service, ...plan.independent];
    // A new start announces its workflows' readiness again.
    await new PodState(connection, queues.prefix).resetAnnouncements();
    await removeStale(queues, flows.flatMap(flowJobs), log);
    for (const flow of flows) await queues.flows.add(flow);
    const ids = flows.flatMap(flowJobIds);
    const added = await new RuntimeAdditions(config.stateDir, config.secrets, log).load();
    const addedModels = await addModels(config, queues, added.models);
    for (const node of added.nodes) await addNode(queues, node);
    await markProvisioned(connection, queues.prefix);
    log.info(
      {
        models: config.models.length,
        nodes: config.nodes.length,
        runtimeModels: addedModels.length,
        runtimeNodes: added.nodes.length,
        waitFor: config.comfyui.waitFor,
        jobs: ids.length,
      },
      'enqueued this start\'s flow',
    );
    return { action: 'started', jobIds: ids };
  });
}

/** Redis key that exists while this start's flow is in Redis; the workers watch it (runtime/recovery.ts). */
export function provisionedKey(prefix: string): string {
  return `${prefix}:pod:provisioned`;
}

async function markProvisioned(connection: RedisClient, prefix: string): Promise<void> {
  await connection.set(provisionedKey(prefix), String(Date.now()));
}

export interface EnqueuedModel {
  id: string;
  jobIds: string[];
  /** `queued`: new jobs; `exists`: already queued, running or done (a failed one is re-queued). */
  status: 'queued' | 'exists';
}

/** How a runtime addition is enqueued. */
export interface AdditionOptions {
  /** Puts the downloads among those of this start's workflows (POST /api/workflows). */
  priority?: number;
  log?: Logger;
}

/**
 * Runtime additions (POST /api/models, POST /api/workflows): standalone flows, so ComfyUI is not
 * restarted. They are remembered on disk (producer/additions.ts) for a Redis that loses its data
 * and for later starts.
 */
export async function enqueueModels(config: Config, queues: Queues, models: readonly ConfiguredModel[], options: AdditionOptions = {}): Promise<EnqueuedModel[]> {
  const { log } = options;
  const out = await addModels(config, queues, models, options.priority);
  await new RuntimeAdditions(config.stateDir, config.secrets, log)
    .addModels(models)
    .catch((err: Error) => log?.warn({ err: err.message }, 'runtime models not remembered on disk; after a Redis loss, add them again'));
  return out;
}

/** Runtime additions (POST /api/nodes), remembered like models. */
export async function enqueueNode(config: Config, queues: Queues, node: NodeSpec, log?: Logger): Promise<{ jobId: string; status: 'queued' | 'exists' }> {
  const out = await addNode(queues, node);
  await new RuntimeAdditions(config.stateDir, config.secrets, log)
    .addNode(node)
    .catch((err: Error) => log?.warn({ err: err.message }, 'runtime node not remembered on disk; after a Redis loss, add it again'));
  return out;
}

async function addModels(config: Config, queues: Queues, models: readonly ConfiguredModel[], priority?: number): Promise<EnqueuedModel[]> {
  const out: EnqueuedModel[] = [];
  for (const model of models) {
    const flow = modelFlow(config, model, false, priority);
    const ids = flowJobIds(flow);
    out.push({ id: ids[0]!.replace(/^organize-/, ''), jobIds: ids, status: await addUnlessPresent(queues, flow) });
  }
  return out;
}

async function addNode(queues: Queues, node: NodeSpec): Promise<{ jobId: string; status: 'queued' | 'exists' }> {
  const flow = nodeJob(node, false);
  return { jobId: flow.opts!.jobId!, status: await addUnlessPresent(queues, flow) };
}

/** Additions of one flow run one at a time in this process: of two concurrent requests, one adds, the other finds it. */
const adding = new KeyedMutex();

function addUnlessPresent(queues: Queues, flow: FlowJob): Promise<'queued' | 'exists'> {
  return adding.run(`${queues.prefix}:${flow.opts!.jobId!}`, async () => {
    const root = await queues.queue[flow.queueName as QueueName].getJob(flow.opts!.jobId!);
    if (root) {
      if ((await root.getState()) !== 'failed') return 'exists';
      await root.remove({ removeChildren: true });
    }
    await removeStale(queues, flowJobs(flow), undefined);
    await queues.flows.add(flow);
    return 'queued';
  });
}

/** Jobs left from earlier starts under the same ids (failed or done) are replaced, never doubled. */
async function removeStale(queues: Queues, jobs: readonly { queueName: QueueName; jobId: string }[], log: Logger | undefined): Promise<void> {
  for (const { queueName, jobId } of jobs) {
    const job = await queues.queue[queueName].getJob(jobId);
    if (!job) continue;
    if ((await job.getState()) === 'active') continue;
    await job.remove({ removeChildren: true }).catch((err: Error) => log?.warn({ id: jobId, err: err.message }, 'stale job not removed'));
  }
}

/** A Redis lock so `phoenix produce` and a restarting workers process never enqueue at once. */
async function withLock<T>(redis: RedisClient, key: string, fn: () => Promise<T>): Promise<T> {
  const token = randomUUID();
  const deadline = Date.now() + 120_000;
  while ((await redis.set(key, token, 'PX', 120_000, 'NX')) !== 'OK') {
    if (Date.now() > deadline) throw new Error(`another producer holds ${key} for over 2 minutes`);
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    if ((await redis.get(key)) === token) await redis.del(key);
  }
}
