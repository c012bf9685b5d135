import type { RedisClient } from '../lib/redis-client.js';

/** What a pod says about itself at every heartbeat. */
export interface PodRecord {
  id: string;
  labels: Record<string, string>;
  /** BullMQ prefix of the pod's queues, for the fleet board. */
  queuePrefix: string;
  ready: boolean;
  comfyui: string;
  models: { ready: number; total: number; failed: number };
  gpus: { name: string; memoryMiB: number }[];
  versions: Record<string, string>;
  startedAt: number;
}

export interface FleetPod extends PodRecord {
  lastHeartbeat: number;
  /** No heartbeat within the alive window: the pod stopped, died or lost the Redis. */
  stale: boolean;
}

/** Seconds between heartbeats; a pod is stale after three missed ones. */
export const HEARTBEAT_MS = 5000;
/** A pod gone for this long leaves the registry. */
const FORGET_MS = 24 * 3600_000;

/**
 * The fleet's pod registry: a sorted set of pod ids by last heartbeat, each pod's last record,
 * and an expiring alive key per pod. All under the fleet's one hash tag, so a heartbeat is one
 * MULTI even on a Redis Cluster.
 */
export class PodRegistry {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {}

  async beat(record: PodRecord): Promise<void> {
    const now = Date.now();
    await this.redis
      .multi()
      .zadd(this.podsKey(), now, record.id)
      .set(this.recordKey(record.id), JSON.stringify(record), 'PX', FORGET_MS)
      .set(this.aliveKey(record.id), String(now), 'PX', this.heartbeatMs * 3)
      .zremrangebyscore(this.podsKey(), 0, now - FORGET_MS)
      .exec();
  }

  /** A pod that stops on purpose shows as stale at once instead of after three missed heartbeats. */
  async stopped(id: string): Promise<void> {
    await this.redis.del(this.aliveKey(id));
  }

  /** Every pod seen within a day, stale ones marked, sorted by id. */
  async list(): Promise<FleetPod[]> {
    const flat = await this.redis.zrange(this.podsKey(), '0', '-1', 'WITHSCORES');
    const pods: FleetPod[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const id = flat[i]!;
      const [record, alive] = await Promise.all([this.redis.get(this.recordKey(id)), this.redis.exists(this.aliveKey(id))]);
      if (!record) continue;
      pods.push({ ...(JSON.parse(record) as PodRecord), lastHeartbeat: Number(flat[i + 1]), stale: alive === 0 });
    }
    return pods.sort((a, b) => a.id.localeCompare(b.id));
  }

  private podsKey(): string {
    return `${this.prefix}:pods`;
  }

  private recordKey(id: string): string {
    return `${this.prefix}:pod:${id}`;
  }

  private aliveKey(id: string): string {
    return `${this.prefix}:alive:${id}`;
  }
}
