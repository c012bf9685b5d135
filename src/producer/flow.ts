import type { FlowJob, JobsOptions } from 'bullmq';
import type { Config, ConfiguredModel } from '../config/index.js';
import { describeSpec, modelId, toStoredSpec } from '../config/model-spec.js';
import type { NodeSpec } from '../config/nodes.js';
import { JobName, QueueName, jobIds, type ModelJobData } from '../queue/jobs.js';

/**
 * Job options shared by every job. Jobs are kept after they finish: their deterministic ids make
 * a second producer run a no-op, and /status reads models and nodes from them.
 * `ignoreDependencyOnFailure` lets a parent run when a child failed for good, so one bad model
 * never leaves ComfyUI stuck in waiting-children.
 */
const KEEP: JobsOptions = { removeOnComplete: false, removeOnFail: false, keepLogs: 500 };
const AS_CHILD: JobsOptions = { ignoreDependencyOnFailure: true };

export function modelJobData(model: ConfiguredModel): ModelJobData {
  return { id: modelId(model.spec), origin: model.origin, label: describeSpec(model.spec), spec: toStoredSpec(model.spec) };
}

/**
 * organize ← download for one model; `asChild` when it hangs under the service job. A `priority`
 * (BullMQ's: 1 goes first) orders the downloads a workflow needs before the others.
 */
export function modelFlow(config: Config, model: ConfiguredModel, asChild: boolean, priority?: number): FlowJob {
  const data = modelJobData(model);
  const order = priority !== undefined ? { priority } : {};
  return {
    name: JobName.OrganizeModel,
    queueName: QueueName.Organize,
    data,
    opts: { ...KEEP, ...(asChild ? AS_CHILD : {}), ...order, jobId: jobIds.organize(data.id), attempts: 1 },
    children: [
      {
        name: JobName.DownloadModel,
        queueName: QueueName.Download,
        data,
        opts: {
          ...KEEP,
          ...AS_CHILD,
          ...order,
          jobId: jobIds.download(data.id),
          attempts: config.download.attempts,
          backoff: { type: 'phoenix' },
        },
      },
    ],
  };
}

export function nodeJob(node: NodeSpec, asChild: boolean): FlowJob {
  return {
    name: JobName.InstallNode,
    queueName: QueueName.Nodes,
    data: { node },
    opts: { ...KEEP, ...(asChild ? AS_CHILD : {}), jobId: jobIds.node(node), attempts: 2, backoff: { type: 'phoenix' } },
  };
}

function pythonPackagesJob(packages: readonly string[], asChild: boolean): FlowJob {
  return {
    name: JobName.InstallPythonPackages,
    queueName: QueueName.Nodes,
    data: { packages: [...packages] },
    opts: { ...KEEP, ...(asChild ? AS_CHILD : {}), jobId: jobIds.pythonPackages(packages), attempts: 2, backoff: { type: 'phoenix' } },
  };
}

export interface BootPlan {
  /** The service job with what ComfyUI waits for as its children. */
  service: FlowJob;
  /** What ComfyUI does not wait for (COMFYUI_WAIT_FOR=nodes or none). */
  independent: FlowJob[];
}

/** The job graph of one pod start, shaped by COMFYUI_WAIT_FOR; `priorities` by model id. */
export function bootPlan(config: Config, priorities: ReadonlyMap<string, number> = new Map()): BootPlan {
  const waitModels = config.comfyui.waitFor === 'all';
  const waitNodes = config.comfyui.waitFor !== 'none';
  // Highest priority first: flows that do not wait under the service job are added one by one,
  // and a worker may take the first before the next is queued.
  const byPriority = [...config.models].sort((a, b) => (priorities.get(modelId(a.spec)) ?? 0) - (priorities.get(modelId(b.spec)) ?? 0));
  const models = byPriority.map((m) => modelFlow(config, m, waitModels, priorities.get(modelId(m.spec))));
  const nodes = config.nodes.map((n) => nodeJob(n, waitNodes));
  // Python packages always precede ComfyUI: it imports them at start.
  const python = config.extraPythonPackages.length > 0 ? [pythonPackagesJob(config.extraPythonPackages, true)] : [];
  return {
    service: {
      name: JobName.StartComfyUI,
      queueName: QueueName.Service,
      data: { requestedAt: Date.now() },
      opts: { ...KEEP, jobId: jobIds.service(), attempts: 3, backoff: { type: 'phoenix' } },
      children: [...(waitModels ? models : []), ...(waitNodes ? nodes : []), ...python],
    },
    independent: [...(waitModels ? [] : models), ...(waitNodes ? [] : nodes)],
  };
}

/** Every job of a flow tree with its queue, parents first. */
export function flowJobs(flow: FlowJob): { queueName: QueueName; jobId: string }[] {
  const own = flow.opts?.jobId ? [{ queueName: flow.queueName as QueueName, jobId: flow.opts.jobId }] : [];
  return [...own, ...(flow.children ?? []).flatMap(flowJobs)];
}

/** Every job id of a flow tree, parents first. */
export function flowJobIds(flow: FlowJob): string[] {
  return flowJobs(flow).map((j) => j.jobId);
}

