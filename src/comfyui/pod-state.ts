import type { WorkflowRecord } from '../config/index.js';
import type { RedisClient } from '../lib/redis-client.js';
import type { IsolationStatus } from '../lib/run-as.js';
import type { Gpu } from './gpu.js';

export type ComfyState = 'waiting' | 'starting' | 'running' | 'restarting' | 'failed' | 'stopped';

export interface ComfyStatus {
  state: ComfyState;
  pid: number | null;
  port: number;
  restarts: number;
  error: string | null;
  /** When the ComfyUI now starting or running was launched: custom nodes installed later are not loaded in it. */
  startedAt: number | null;
  /** ComfyUI's last output lines when a try failed or it died; empty otherwise. */
  lastOutput: string[];
  /** When the next try is due (ms since the epoch) while it is `failed` or `restarting`; else null. */
  nextTryAt: number | null;
  updatedAt: number;
}

export type { Gpu } from './gpu.js';

/**
 * What the workers process knows and the board process shows: ComfyUI's state, the GPUs, and the
 * workflows this pod provisions for. Kept in Redis because in the image they are separate processes.
 */
export class PodState {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async setComfy(status: ComfyStatus): Promise<void> {
    await this.redis.set(this.key('comfyui'), JSON.stringify(status));
  }

  async comfy(port: number): Promise<ComfyStatus> {
    const raw = await this.redis.get(this.key('comfyui'));
    const waiting: ComfyStatus = { state: 'waiting', pid: null, port, restarts: 0, error: null, lastOutput: [], nextTryAt: null, startedAt: null, updatedAt: 0 };
    return raw ? { ...waiting, ...(JSON.parse(raw) as Partial<ComfyStatus>) } : waiting;
  }

  async setGpus(gpus: readonly Gpu[]): Promise<void> {
    await this.redis.set(this.key('gpus'), JSON.stringify(gpus));
  }

  async gpus(): Promise<Gpu[]> {
    const raw = await this.redis.get(this.key('gpus'));
    return raw ? (JSON.parse(raw) as Gpu[]) : [];
  }

  /** Records a workflow (the configured ones at each start, others as the API adds them). */
  async setWorkflow(record: WorkflowRecord): Promise<void> {
    await this.redis.hset(this.key('workflows'), record.name, JSON.stringify(record));
  }

  async workflows(): Promise<WorkflowRecord[]> {
    const all = await this.redis.hgetall(this.key('workflows'));
    return Object.values(all).map((v) => JSON.parse(v) as WorkflowRecord);
  }

  /** True the first time `what` is announced since the last resetAnnouncements (one start of the pod). */
  async announceOnce(what: string): Promise<boolean> {
    return (await this.redis.sadd(this.key('announced'), what)) === 1;
  }

  async resetAnnouncements(): Promise<void> {
    await this.redis.del(this.key('announced'));
  }

  async setIsolation(status: IsolationStatus): Promise<void> {
    await this.redis.set(this.key('isolation'), JSON.stringify(status));
  }

  /** How the workers run third-party code; before they have said, that nothing is known yet. */
  async isolation(): Promise<IsolationStatus> {
    const raw = await this.redis.get(this.key('isolation'));
    return raw ? (JSON.parse(raw) as IsolationStatus) : { user: null, mode: 'none', reason: 'the workers have not started yet' };
  }

  private key(name: string): string {
    return `${this.prefix}:pod:${name}`;
  }
}
