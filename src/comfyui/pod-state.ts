import type { Redis } from 'ioredis';
import type { Gpu } from './gpu.js';

export type ComfyState = 'waiting' | 'starting' | 'running' | 'restarting' | 'failed' | 'stopped';

export interface ComfyStatus {
  state: ComfyState;
  pid: number | null;
  port: number;
  restarts: number;
  error: string | null;
  /** ComfyUI's last output lines when a try failed or it died; empty otherwise. */
  lastOutput: string[];
  /** When the next try is due (ms since the epoch) while it is `failed` or `restarting`; else null. */
  nextTryAt: number | null;
  updatedAt: number;
}

export type { Gpu } from './gpu.js';

/**
 * What the workers process knows and the board process shows: ComfyUI's state and the GPUs.
 * Kept in Redis because in the image they are separate processes.
 */
export class PodState {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async setComfy(status: ComfyStatus): Promise<void> {
    await this.redis.set(this.key('comfyui'), JSON.stringify(status));
  }

  async comfy(port: number): Promise<ComfyStatus> {
    const raw = await this.redis.get(this.key('comfyui'));
    const waiting: ComfyStatus = { state: 'waiting', pid: null, port, restarts: 0, error: null, lastOutput: [], nextTryAt: null, updatedAt: 0 };
    return raw ? { ...waiting, ...(JSON.parse(raw) as Partial<ComfyStatus>) } : waiting;
  }

  async setGpus(gpus: readonly Gpu[]): Promise<void> {
    await this.redis.set(this.key('gpus'), JSON.stringify(gpus));
  }

  async gpus(): Promise<Gpu[]> {
    const raw = await this.redis.get(this.key('gpus'));
    return raw ? (JSON.parse(raw) as Gpu[]) : [];
  }

  private key(name: string): string {
    return `${this.prefix}:pod:${name}`;
  }
}
