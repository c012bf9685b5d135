import { statfs } from 'node:fs/promises';
import path from 'node:path';
import type { ComfyStatus, Gpu, PodState } from '../comfyui/pod-state.js';
import { isHealthy } from '../comfyui/process.js';
import type { Config } from '../config/index.js';
import { isRegistryNode } from '../config/nodes.js';
import type { IsolationStatus } from '../lib/run-as.js';
import {
  JobName,
  QUEUE_NAMES,
  jobIds,
  type DownloadProgress,
  type FileProgress,
  type ModelJobData,
  type NodeJobData,
  type NodeResult,
  type OrganizeResult,
  type QueueName,
} from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { workflowStatuses, type WorkflowStatus } from '../queue/workflow-progress.js';
import { privacyStatus, type PrivacyStatus } from '../privacy/status.js';
import { PrivacyStore } from '../privacy/store.js';
import { snapshotJobs, type JobSnapshot } from '../queue/snapshot.js';
import { readVersions } from './versions.js';

export type ModelState = 'queued' | 'downloading' | 'verifying' | 'ready' | 'failed';

/** One file of a model: a single-file model has one, a whole repository one per file. */
export interface FileStatus {
  name: string;
  /** Where it is published; null until it is. */
  path: string | null;
  bytes: number | null;
  sha256: string | null;
  state: ModelState;
}

export interface ModelStatus {
  id: string;
  name: string;
  source: string;
  origin: string;
  category: string | null;
  path: string | null;
  bytes: number | null;
  bytesDone: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
  sha256: string | null;
  state: ModelState;
  error: string | null;
  files: FileStatus[];
  /** Another pod of the fleet fetches this model (or its file) right now; bytes are its progress. */
  waitingFor: string | null;
  /** While downloading: from the file's origin or from the model mirror. */
  from: 'origin' | 'mirror' | null;
}

export interface NodeStatus {
  name: string;
  source: 'git' | 'registry';
  /** The repository, or the registry's page of the node. */
  url: string;
  /** The ref (git) or version (registry) asked for; null: the default branch, the newest release. */
  ref: string | null;
  commit: string | null;
  /** A registry node's installed release. */
  version: string | null;
  state: 'queued' | 'installing' | 'installed' | 'failed';
  error: string | null;
}

export interface PodStatus {
  ready: boolean;
  /** `port` is the public one; `auth` says whether it asks for Phoenix's login (COMFYUI_AUTH). */
  comfyui: Omit<ComfyStatus, 'updatedAt'> & { auth: 'on' | 'off' };
  models: ModelStatus[];
  nodes: NodeStatus[];
  workflows: WorkflowStatus[];
  queues: Record<QueueName, Record<string, number>>;
  disk: { path: string; freeBytes: number; totalBytes: number };
  gpus: Gpu[];
  versions: Record<string, string>;
  privacy: PrivacyStatus;
  /** Whether ComfyUI, git, pip, install.py and custom nodes run as a user of their own (COMFYUI_USER). */
  isolation: IsolationStatus;
}

/** The JSON of GET /status, built from the queues and the pod state. */
export async function podStatus(config: Config, queues: Queues, pod: PodState): Promise<PodStatus> {
  const [comfy, models, nodes, workflows, counts, disk, gpus, versions, privacy, isolation] = await Promise.all([
    pod.comfy(config.comfyui.port),
    modelStatuses(queues),
    nodeStatuses(queues, config.endpoints.registry),
    workflowStatuses(config, queues, pod),
    queueCounts(queues),
    diskStatus(config.modelsRoot),
    pod.gpus(),
    readVersions(),
    privacyStatus(config, new PrivacyStore(queues, config)),
    pod.isolation(),
  ]);
  const ready = comfy.state === 'running' && (await isHealthy(config.comfyui.listen.port));
  const { updatedAt: _updatedAt, ...state } = comfy;
  const comfyui = { ...state, port: config.comfyui.port, auth: config.comfyui.auth };
  return { ready, comfyui, models, nodes, workflows, queues: counts, disk, gpus, versions, privacy, isolation };
}

/** Every model, from two snapshots (organize and download jobs): a fixed number of round trips at any scale. */
async function modelStatuses(queues: Queues): Promise<ModelStatus[]> {
  const [organizeJobs, downloadJobs] = await Promise.all([snapshotJobs(queues.queue.organize), snapshotJobs(queues.queue.download)]);
  const downloads = new Map(downloadJobs.map((j) => [j.id, j]));
  return organizeJobs
    .filter((j) => j.name === JobName.OrganizeModel)
    .map((organize) => {
      const data = organize.data as ModelJobData;
      return modelStatus(organize, data, downloads.get(jobIds.download(data.id)));
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}

function modelStatus(organize: JobSnapshot, data: ModelJobData, download: JobSnapshot | undefined): ModelStatus {
  const organizeState = organize.state;
  const downloadState = download?.state;
  const published = (organize.returnvalue as OrganizeResult | null)?.files;
  const progress = (download?.progress ?? {}) as Partial<DownloadProgress>;
  let state: ModelState;
  let error: string | null = null;
  if (organizeState === 'completed') state = 'ready';
  else if (organizeState === 'failed') {
    state = 'failed';
    error = organize.failedReason;
  } else if (organizeState === 'active' || downloadState === 'completed') state = 'verifying';
  else if (downloadState === 'failed') {
    state = 'failed';
    error = download?.failedReason ?? null;
  } else if (downloadState === 'active') state = progress.phase === 'verifying' ? 'verifying' : 'downloading';
  else {
    state = 'queued';
    error = download?.failedReason ?? null;
  }
  const bytes = published ? published.reduce((n, f) => n + f.bytes, 0) : progress.bytes ?? null;
  const name = published?.map((f) => f.name).join(', ') || progress.name || data.spec.filename || data.label;
  return {
    id: data.id,
    name,
    source: data.spec.source,
    origin: data.origin,
    category: published?.[0]?.category ?? data.spec.category ?? null,
    path: published?.[0]?.path ?? null,
    bytes,
    bytesDone: state === 'ready' ? bytes ?? 0 : progress.bytesDone ?? 0,
    bytesPerSecond: state === 'downloading' ? progress.bytesPerSecond ?? 0 : 0,
    etaSeconds: state === 'downloading' ? progress.etaSeconds ?? null : null,
    sha256: published?.length === 1 ? published[0]!.sha256 : null,
    state,
    error,
    files: fileStatuses(published, progress.files, state, name),
    waitingFor: state === 'downloading' && progress.phase === 'waiting' ? progress.waitingFor ?? null : null,
    from: state === 'downloading' && progress.phase === 'downloading' ? progress.from ?? null : null,
  };
}

/**
 * The model's files: as published once organized; before that as the download job last reported
 * them (a file's own state, or the model's failure); before it resolved, one entry for the model.
 */
function fileStatuses(published: OrganizeResult['files'] | undefined, reported: FileProgress[] | undefined, state: ModelState, name: string): FileStatus[] {
  if (published) return published.map((f) => ({ name: f.name, path: f.path, bytes: f.bytes, sha256: f.sha256, state: 'ready' }));
  if (!reported?.length) return [{ name, path: null, bytes: null, sha256: null, state }];
  return reported.map((f) => ({
    name: f.name,
    path: null,
    bytes: f.bytes,
    sha256: f.sha256,
    state: state === 'failed' ? 'failed' : f.state === 'in-place' ? 'verifying' : f.state,
  }));
}

async function nodeStatuses(queues: Queues, registryUrl: string): Promise<NodeStatus[]> {
  const jobs = await snapshotJobs(queues.queue.nodes);
  return jobs
    .filter((job) => job.name === JobName.InstallNode)
    .map((job): NodeStatus => {
      const { node } = job.data as NodeJobData;
      const { state } = job;
      const result = job.returnvalue as NodeResult | null;
      const registry = isRegistryNode(node);
      return {
        name: node.name,
        source: registry ? 'registry' : 'git',
        url: registry ? `${registryUrl}/nodes/${encodeURIComponent(node.registry)}` : node.url,
        ref: (registry ? node.version : node.ref) ?? null,
        commit: result?.commit ?? null,
        version: result?.version ?? null,
        state: state === 'completed' ? 'installed' : state === 'failed' ? 'failed' : state === 'active' ? 'installing' : 'queued',
        error: job.failedReason,
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function queueCounts(queues: Queues): Promise<PodStatus['queues']> {
  const entries = await Promise.all(
    QUEUE_NAMES.map(async (name) => {
      const c = await queues.queue[name].getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'waiting-children');
      const counts: Record<string, number> = {
        waiting: c.waiting ?? 0,
        active: c.active ?? 0,
        completed: c.completed ?? 0,
        failed: c.failed ?? 0,
        delayed: c.delayed ?? 0,
        waitingChildren: c['waiting-children'] ?? 0,
      };
      return [name, counts];
    }),
  );
  return Object.fromEntries(entries) as PodStatus['queues'];
}

/** Free space where models land (or the nearest existing parent). */
async function diskStatus(modelsRoot: string): Promise<PodStatus['disk']> {
  let dir = modelsRoot;
  for (;;) {
    try {
      const s = await statfs(dir);
      return { path: dir, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return { path: dir, freeBytes: 0, totalBytes: 0 };
      dir = parent;
    }
  }
}
