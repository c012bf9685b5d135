import os from 'node:os';
import type { z } from 'zod';
import { POD_ID, type EnvSchema } from './env.js';

/** A node of a Redis Cluster, as REDIS_CLUSTER or REDIS_URL names it. */
export interface RedisNode {
  host: string;
  port: number;
}

/** The S3-compatible model mirror (MODEL_MIRROR and its endpoint and credentials). */
export interface MirrorConfig {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash ('' for the bucket's root). */
  prefix: string;
  /** R2, B2, MinIO, RunPod's S3 API…; undefined means AWS S3 itself. */
  endpoint: string | undefined;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface FleetConfig {
  podId: string;
  labels: Readonly<Record<string, string>>;
  /**
   * The Redis is shared with other pods (REDIS_URL or REDIS_CLUSTER set): every key of this pod
   * lives under its own hash tag, and the pod registry and fleet-wide leases are on.
   */
  shared: boolean;
  /** PHOENIX_FLEET: this pod's board shows every pod and takes fleet-wide additions. */
  board: boolean;
  /** BullMQ prefix of this pod's queues: `phoenix` on the pod's own Redis, `{phoenix-<pod>}` when shared. */
  queuePrefix: string;
  /** Prefix (one hash tag) of the fleet's own keys: registry, leases, the fleet flow's queues. */
  fleetPrefix: string;
}

/** The variables these settings come from, as the schema parsed them. */
export type FleetEnv = Pick<
  z.output<typeof EnvSchema>,
  | 'REDIS_URL'
  | 'REDIS_CLUSTER'
  | 'PHOENIX_POD_ID'
  | 'RUNPOD_POD_ID'
  | 'HOSTNAME'
  | 'PHOENIX_POD_LABELS'
  | 'PHOENIX_FLEET'
  | 'MODEL_MIRROR'
  | 'MODEL_MIRROR_ENDPOINT'
  | 'AWS_ACCESS_KEY_ID'
  | 'AWS_SECRET_ACCESS_KEY'
  | 'AWS_SESSION_TOKEN'
  | 'AWS_REGION'
>;

export const FLEET_PREFIX = '{phoenix-fleet}';

/** The queue prefix of a pod on a shared Redis: one hash tag per pod, so BullMQ works on a cluster. */
export function podQueuePrefix(podId: string): string {
  return `{phoenix-${podId}}`;
}

export function fleetConfig(e: FleetEnv, problems: string[]): FleetConfig {
  const podId = choosePodId(e);
  const shared = e.REDIS_URL !== undefined || clusterWanted(e.REDIS_CLUSTER);
  if (e.PHOENIX_FLEET && !shared) problems.push('PHOENIX_FLEET: needs a shared Redis (set REDIS_URL or REDIS_CLUSTER)');
  return {
    podId,
    labels: parseLabels(e.PHOENIX_POD_LABELS, problems),
    shared,
    board: e.PHOENIX_FLEET,
    queuePrefix: shared ? podQueuePrefix(podId) : 'phoenix',
    fleetPrefix: FLEET_PREFIX,
  };
}

/** PHOENIX_POD_ID, else RunPod's RUNPOD_POD_ID, else the host name (made id-safe). */
function choosePodId(e: FleetEnv): string {
  if (e.PHOENIX_POD_ID) return e.PHOENIX_POD_ID;
  const raw = e.RUNPOD_POD_ID ?? e.HOSTNAME ?? os.hostname();
  const safe = raw.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return POD_ID.test(safe) ? safe : 'pod';
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
const LABEL_VALUE = /^[A-Za-z0-9._/-]{0,63}$/;

/** PHOENIX_POD_LABELS: `k=v,…`. */
export function parseLabels(text: string | undefined, problems: string[], variable = 'PHOENIX_POD_LABELS'): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    const key = eq > 0 ? item.slice(0, eq).trim() : '';
    const value = eq > 0 ? item.slice(eq + 1).trim() : '';
    if (!LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) {
      problems.push(`${variable}: "${item}" is not key=value (letters, digits, . _ / -)`);
      continue;
    }
    labels[key] = value;
  }
  return labels;
}

function clusterWanted(text: string | undefined): boolean {
  return text !== undefined && !/^(false|0|no|off)$/i.test(text);
}

/**
 * REDIS_CLUSTER: `true` (the cluster is reached through REDIS_URL's host) or `host:port,…`.
 * Undefined when the Redis is a single server. REDIS_URL, when set, still gives the password and TLS.
 */
export function redisCluster(e: Pick<FleetEnv, 'REDIS_URL' | 'REDIS_CLUSTER'>, problems: string[]): RedisNode[] | undefined {
  const text = e.REDIS_CLUSTER;
  if (!clusterWanted(text)) return undefined;
  if (/^(true|1|yes|on)$/i.test(text!)) {
    if (!e.REDIS_URL || e.REDIS_URL.startsWith('unix://')) {
      problems.push('REDIS_CLUSTER: `true` needs REDIS_URL (redis:// or rediss://) naming a node of the cluster');
      return undefined;
    }
    const url = new URL(e.REDIS_URL);
    return [{ host: url.hostname, port: Number(url.port || 6379) }];
  }
  const nodes: RedisNode[] = [];
  for (const item of text!.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/i.exec(item);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) problems.push(`REDIS_CLUSTER: "${item}" is not host:port`);
    else nodes.push({ host: m[1]!.replace(/^\[|\]$/g, ''), port });
  }
  if (nodes.length === 0 && !problems.some((p) => p.startsWith('REDIS_CLUSTER'))) problems.push('REDIS_CLUSTER: name at least one host:port, or `true`');
  return nodes.length > 0 ? nodes : undefined;
}

/** MODEL_MIRROR with its endpoint and credentials; both keys are required with a mirror. */
export function mirrorConfig(e: FleetEnv, problems: string[]): MirrorConfig | undefined {
  if (!e.MODEL_MIRROR) {
    if (e.MODEL_MIRROR_ENDPOINT) problems.push('MODEL_MIRROR_ENDPOINT: set MODEL_MIRROR (s3://bucket/prefix) too');
    return undefined;
  }
  const missing = (['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const).filter((k) => !e[k]);
  for (const k of missing) problems.push(`${k}: needed with MODEL_MIRROR (the mirror's access key)`);
  if (missing.length > 0) return undefined;
  const rest = e.MODEL_MIRROR.slice('s3://'.length);
  const slash = rest.indexOf('/');
  return {
    bucket: slash < 0 ? rest : rest.slice(0, slash),
    prefix: slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, ''),
    endpoint: e.MODEL_MIRROR_ENDPOINT,
    region: e.AWS_REGION,
    credentials: {
      accessKeyId: e.AWS_ACCESS_KEY_ID!,
      secretAccessKey: e.AWS_SECRET_ACCESS_KEY!,
      ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}),
    },
  };
}
