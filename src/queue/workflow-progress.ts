import path from 'node:path';
import type { Job } from 'bullmq';
import { installedNodeTypes } from '../comfyui/object-info.js';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config, WorkflowRecord } from '../config/index.js';
import { expectedFileName } from '../config/model-spec.js';
import { pathExists } from '../lib/fs.js';
import { folderAliases } from '../workflows/loaders.js';
import { FileIndex, findMissing, type MissingItem } from '../workflows/missing.js';
import type { NodeTypeRef } from '../workflows/requirements.js';
import { JobName, jobIds, type DownloadProgress, type ModelJobData, type NodeJobData, type OrganizeResult } from './jobs.js';
import type { Queues } from './queues.js';

/** One workflow in /status: ready exactly when it can run now, and what keeps it from it. */
export interface WorkflowStatus {
  name: string;
  origin: string;
  ready: boolean;
  /** Model ids it needs. */
  models: string[];
  /** Custom node folders it needs. */
  nodes: string[];
  missing: MissingItem[];
  /** Node types checked once ComfyUI runs (API-format and older files name no packs). */
  unverified: NodeTypeRef[];
  /** Its models and nodes that failed for good. */
  failed: string[];
  notes: string[];
}

const STATES = ['active', 'waiting', 'waiting-children', 'delayed', 'prioritized', 'completed', 'failed'] as const;

/**
 * Where each workflow stands. A workflow is ready when every model it needs is verified in place,
 * every node pack it needs is installed and loaded (ComfyUI started after it), nothing is
 * missing, and ComfyUI runs. A loader file counts as provided when a model lands there (whatever
 * its state: a failed one is reported as failed, not missing) or it is already on disk.
 */
export async function workflowStatuses(config: Config, queues: Queues, pod: PodState): Promise<WorkflowStatus[]> {
  const records = await allWorkflows(config, pod);
  if (records.length === 0) return [];
  const [comfy, models, nodes] = await Promise.all([pod.comfy(config.comfyui.port), modelFacts(queues), nodeFacts(queues)]);
  const loaded = comfy.state === 'running' && comfy.startedAt !== null && [...nodes.values()].every((n) => n.finishedOn <= comfy.startedAt!);
  const installedTypes = loaded ? await installedNodeTypes(config.comfyui.listen.port, `${comfy.pid}:${comfy.startedAt}`) : undefined;
  const index = new FileIndex();
  for (const m of models.values()) if (m.folder && m.name) index.add(m.folder, m.name);

  return Promise.all(
    records.map(async (record): Promise<WorkflowStatus> => {
      const onDisk = new FileIndex();
      for (const f of record.files) if (!index.has(f.folder, f.file) && (await presentOnDisk(config, f.folder, f.file))) onDisk.add(f.folder, f.file);
      const { missing, unverified } = findMissing(record, {
        hasFile: (folder, file) => index.has(folder, file) || onDisk.has(folder, file),
        installedTypes,
      });
      const failed = [
        ...record.models.filter((id) => models.get(id)?.state === 'failed'),
        ...record.nodes.filter((name) => nodes.get(name)?.state === 'failed'),
      ];
      const nodesLoaded = record.nodes.every((name) => {
        const n = nodes.get(name);
        return n?.state === 'completed' && comfy.startedAt !== null && n.finishedOn <= comfy.startedAt;
      });
      const ready =
        comfy.state === 'running' &&
        missing.length === 0 &&
        nodesLoaded &&
        record.models.every((id) => models.get(id)?.state === 'completed');
      return {
        name: record.name,
        origin: record.origin,
        ready,
        models: record.models,
        nodes: record.nodes,
        missing,
        unverified,
        failed,
        notes: record.notes,
      };
    }),
  );
}

/** The configured workflows and those added at runtime (a runtime one of the same name replaces it). */
async function allWorkflows(config: Config, pod: PodState): Promise<WorkflowRecord[]> {
  const byName = new Map<string, WorkflowRecord>(config.workflows.map((w) => [w.name, w]));
  for (const w of await pod.workflows()) byName.set(w.name, w);
  return [...byName.values()];
}

interface ModelFact {
  state: string;
  folder: string | undefined;
  name: string | undefined;
}

/** Each model's state and where its file lands (once known: from the spec, the download, or the publish). */
async function modelFacts(queues: Queues): Promise<Map<string, ModelFact>> {
  const jobs = (await queues.queue.organize.getJobs([...STATES], 0, 999, true)).filter(
    (j): j is Job<ModelJobData> => j?.name === JobName.OrganizeModel,
  );
  const facts = new Map<string, ModelFact>();
  await Promise.all(
    jobs.map(async (job) => {
      const state = await job.getState();
      const published = (job.returnvalue as OrganizeResult | null)?.files?.[0];
      let name = published?.name ?? expectedFileName(job.data.spec);
      if (!name) {
        const download = await queues.queue.download.getJob(jobIds.download(job.data.id));
        name = (download?.progress as Partial<DownloadProgress> | undefined)?.name;
      }
      facts.set(job.data.id, { state, folder: published?.category ?? job.data.spec.category, name });
    }),
  );
  return facts;
}

interface NodeFact {
  state: string;
  finishedOn: number;
}

/** Each custom node folder's latest install job. */
async function nodeFacts(queues: Queues): Promise<Map<string, NodeFact>> {
  const jobs = (await queues.queue.nodes.getJobs([...STATES], 0, 999, true)).filter(
    (j): j is Job<NodeJobData> => j?.name === JobName.InstallNode,
  );
  const latest = new Map<string, Job<NodeJobData>>();
  for (const job of jobs) {
    const seen = latest.get(job.data.node.name);
    if (!seen || seen.timestamp < job.timestamp) latest.set(job.data.node.name, job);
  }
  const facts = new Map<string, NodeFact>();
  await Promise.all(
    [...latest].map(async ([name, job]) => facts.set(name, { state: await job.getState(), finishedOn: job.finishedOn ?? Infinity })),
  );
  return facts;
}

/** A file a loader names that sits in its folder already: under the models root or ComfyUI's own models/. */
export async function presentOnDisk(config: Config, folder: string, file: string): Promise<boolean> {
  const roots = [...new Set([config.modelsRoot, path.join(config.comfyui.dir, 'models')])];
  for (const root of roots) {
    for (const alias of folderAliases(folder)) {
      const target = path.resolve(root, alias, file);
      if (target.startsWith(path.resolve(root) + path.sep) && (await pathExists(target))) return true;
    }
  }
  return false;
}
