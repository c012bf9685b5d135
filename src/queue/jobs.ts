import { z } from 'zod';
import { StoredModelSpec } from '../config/model-spec.js';
import { NodeSpec, isRegistryNode } from '../config/nodes.js';
import type { DownloadedFile } from '../download/types.js';
import { shortHash, slug } from '../lib/names.js';

/**
 * The one place that names queues, jobs and their payloads. Producer, workers and board import
 * from here; nothing else spells a queue name.
 */
export const QueueName = {
  Download: 'download',
  Organize: 'organize',
  Nodes: 'nodes',
  Service: 'service',
  /** Event notifications to PHOENIX_WEBHOOK_URL, retried apart from provisioning. */
  Webhooks: 'webhooks',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];
export const QUEUE_NAMES: readonly QueueName[] = Object.values(QueueName);

export const JobName = {
  DownloadModel: 'download-model',
  OrganizeModel: 'organize-model',
  InstallNode: 'install-node',
  InstallPythonPackages: 'install-python-packages',
  StartComfyUI: 'start-comfyui',
  DeliverWebhook: 'deliver-webhook',
} as const;
export type JobName = (typeof JobName)[keyof typeof JobName];

export const ModelJobData = z.object({
  /** Deterministic model id (see modelId); also the suffix of its job ids. */
  id: z.string(),
  /** Where the model was asked for: an environment variable, a manifest key, or "api". */
  origin: z.string(),
  /** What a user would call it before its file name is known. */
  label: z.string(),
  spec: StoredModelSpec,
});
export type ModelJobData = z.output<typeof ModelJobData>;

export const NodeJobData = z.object({ node: NodeSpec });
export type NodeJobData = z.output<typeof NodeJobData>;

export const PythonPackagesJobData = z.object({ packages: z.array(z.string()).min(1) });
export type PythonPackagesJobData = z.output<typeof PythonPackagesJobData>;

export const ServiceJobData = z.object({ requestedAt: z.number() });
export type ServiceJobData = z.output<typeof ServiceJobData>;

/** One event: `body` is the exact JSON sent (and signed) on every attempt; it holds no secret. */
export const WebhookJobData = z.object({ event: z.string(), body: z.string() });
export type WebhookJobData = z.output<typeof WebhookJobData>;

export interface JobPayloads {
  [JobName.DownloadModel]: ModelJobData;
  [JobName.OrganizeModel]: ModelJobData;
  [JobName.InstallNode]: NodeJobData;
  [JobName.InstallPythonPackages]: PythonPackagesJobData;
  [JobName.StartComfyUI]: ServiceJobData;
  [JobName.DeliverWebhook]: WebhookJobData;
}

export const JOB_SCHEMAS: { [N in JobName]: z.ZodType<JobPayloads[N]> } = {
  [JobName.DownloadModel]: ModelJobData,
  [JobName.OrganizeModel]: ModelJobData,
  [JobName.InstallNode]: NodeJobData,
  [JobName.InstallPythonPackages]: PythonPackagesJobData,
  [JobName.StartComfyUI]: ServiceJobData,
  [JobName.DeliverWebhook]: WebhookJobData,
};

export const JOB_QUEUE: { [N in JobName]: QueueName } = {
  [JobName.DownloadModel]: QueueName.Download,
  [JobName.OrganizeModel]: QueueName.Organize,
  [JobName.InstallNode]: QueueName.Nodes,
  [JobName.InstallPythonPackages]: QueueName.Nodes,
  [JobName.StartComfyUI]: QueueName.Service,
  [JobName.DeliverWebhook]: QueueName.Webhooks,
};

/** Progress a download reports (at most twice a second). */
export interface DownloadProgress {
  phase: 'resolving' | 'downloading' | 'verifying' | 'done';
  name?: string;
  bytesDone: number;
  bytes?: number;
  bytesPerSecond: number;
  etaSeconds?: number;
  /** Each file of the model once resolved, in the source's order. */
  files?: FileProgress[];
}

/** One file of a model as its download job sees it. */
export interface FileProgress {
  name: string;
  bytes: number | null;
  bytesDone: number;
  /** What the source published (or the pin), until the file is hashed; then its own hash. */
  sha256: string | null;
  /** `verifying`: downloaded and hashed, waiting for the checksum gate; `in-place`: already there, verified. */
  state: 'queued' | 'downloading' | 'verifying' | 'in-place';
}

/** What a download job hands its organize job. */
export interface DownloadResult {
  files: DownloadedFile[];
}

export interface OrganizeResult {
  files: { name: string; path: string; category: string; bytes: number; sha256: string }[];
}

export interface NodeResult {
  name: string;
  path: string;
  /** The git commit checked out; for a registry node, null. */
  commit: string | null;
  /** A registry node's release and the sha256 of its zip. */
  version?: string;
  sha256?: string;
}

export const SERVICE_JOB_ID = 'service-comfyui';

export const jobIds = {
  download: (modelId: string) => `download-${modelId}`,
  organize: (modelId: string) => `organize-${modelId}`,
  node: (node: NodeSpec) =>
    `nodes-${slug(node.name)}-${shortHash(isRegistryNode(node) ? `registry:${node.registry}@${node.version ?? ''}` : `${node.url}@${node.ref ?? ''}`)}`,
  pythonPackages: (packages: readonly string[]) => `python-packages-${shortHash(packages.join('\n'))}`,
  service: () => SERVICE_JOB_ID,
};
