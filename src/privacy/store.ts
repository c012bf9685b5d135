import type { Redis } from 'ioredis';
import { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { QueueName } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { computePhase, type HostCategory, type Phase, type RuntimeRules } from './policy.js';

/**
 * The privacy state every process shares, in the pod's Redis (in the image the board, the workers
 * and ComfyUI's parent are separate processes): run-time allow/deny rules, the lockdown, the
 * connection log and its counters, and what the proxy enforces. The phase is derived from the
 * queues on every read, never stored, so no process can hold a stale one.
 */

export type Enforcement = 'none' | 'proxy' | 'firewall';

/** One connection (a CONNECT tunnel or a plain HTTP request) through the egress proxy. */
export interface ConnectionRecord {
  time: number;
  host: string;
  port: number;
  method: 'CONNECT' | 'HTTP';
  /** The process user that opened it (its socket's owner), or its uid when it has no name. */
  user: string;
  allowed: boolean;
  wouldBlock: boolean;
  category: HostCategory;
  rule: string;
  phase: Phase;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
}

/** What the running proxy publishes about itself; it expires when the proxy stops refreshing it. */
export interface EnforcementReport {
  enforcement: Enforcement;
  reason: string;
  proxy: string | null;
  user: string | null;
  updatedAt: number;
}

export interface HostSummary {
  host: string;
  allowed: number;
  blocked: number;
  bytes: number;
}

/** Records kept for `recent` and the board page; counters cover every connection. */
const LOG_LENGTH = 500;
/** Hosts counted one by one; past that, new hosts share one line (a node cannot fill Redis). */
const MAX_HOSTS = 1000;
const OTHER_HOSTS = '(other hosts)';
/** Jobs that keep the pod in the downloads phase, in the states that mean "not finished". */
const BUSY_QUEUES = [QueueName.Download, QueueName.Nodes] as const;
const BUSY_STATES = ['waiting', 'active', 'delayed', 'prioritized'] as const;

export class PrivacyStore {
  private readonly pod: PodState;
  /** The last lockdown state seen: a key lost with Redis' data keeps it instead of lifting it. */
  private lastLockdown = false;

  private readonly redis: Redis;

  constructor(
    private readonly queues: Queues,
    private readonly config: Config,
  ) {
    this.redis = queues.connection;
    this.pod = new PodState(queues.connection, queues.prefix);
  }

  async lockdown(): Promise<boolean> {
    const raw = await this.redis.get(this.key('lockdown'));
    if (raw === 'on' || raw === 'off') this.lastLockdown = raw === 'on';
    return this.lastLockdown;
  }

  async setLockdown(on: boolean): Promise<void> {
    await this.redis.set(this.key('lockdown'), on ? 'on' : 'off');
    this.lastLockdown = on;
  }

  async rules(): Promise<RuntimeRules> {
    const [allow, deny] = await Promise.all([this.redis.hgetall(this.key('allow')), this.redis.smembers(this.key('deny'))]);
    return {
      allow: Object.entries(allow).map(([pattern, until]) => ({ pattern, until: until === '0' ? null : Number(until) })),
      deny: deny.sort(),
    };
  }

  /** Allows a pattern (until a time, or for good); a run-time deny of the same pattern is lifted. */
  async allow(pattern: string, until: number | null): Promise<void> {
    await this.redis.multi().hset(this.key('allow'), pattern, String(until ?? 0)).srem(this.key('deny'), pattern).exec();
  }

  /** Denies a pattern; a run-time allow of the same pattern is lifted. */
  async deny(pattern: string): Promise<void> {
    await this.redis.multi().sadd(this.key('deny'), pattern).hdel(this.key('allow'), pattern).exec();
  }

  async phase(now = Date.now()): Promise<Phase> {
    const [lockdown, comfy, busy, lastActivityAt] = await Promise.all([
      this.lockdown(),
      this.pod.comfy(this.config.comfyui.port),
      this.busy(),
      this.lastActivityAt(),
    ]);
    return computePhase({ lockdown, comfyState: comfy.state, busy, lastActivityAt, now, graceMs: this.config.privacy.graceMs });
  }

  async record(r: ConnectionRecord): Promise<void> {
    const host = (await this.knownHost(r.host)) ? r.host : OTHER_HOSTS;
    const bytes = r.bytesSent + r.bytesReceived;
    await this.redis
      .multi()
      .lpush(this.key('log'), JSON.stringify(r))
      .ltrim(this.key('log'), 0, LOG_LENGTH - 1)
      .hincrby(this.key('counts'), r.allowed ? 'allowed' : 'blocked', 1)
      .hincrby(this.key(r.allowed ? 'hosts:allowed' : 'hosts:blocked'), host, 1)
      .hincrby(this.key('hosts:bytes'), host, bytes)
      .exec();
  }

  async recent(limit: number, filter: (r: ConnectionRecord) => boolean = () => true): Promise<ConnectionRecord[]> {
    const raw = await this.redis.lrange(this.key('log'), 0, LOG_LENGTH - 1);
    return raw.map((line) => JSON.parse(line) as ConnectionRecord).filter(filter).slice(0, limit);
  }

  async counts(): Promise<{ allowed: number; blocked: number }> {
    const c = await this.redis.hgetall(this.key('counts'));
    return { allowed: Number(c.allowed ?? 0), blocked: Number(c.blocked ?? 0) };
  }

  /** Every host seen, most blocked first. */
  async hosts(): Promise<HostSummary[]> {
    const [allowed, blocked, bytes] = await Promise.all(
      ['hosts:allowed', 'hosts:blocked', 'hosts:bytes'].map((k) => this.redis.hgetall(this.key(k))),
    );
    const names = new Set([...Object.keys(allowed!), ...Object.keys(blocked!)]);
    return [...names]
      .map((host) => ({ host, allowed: Number(allowed![host] ?? 0), blocked: Number(blocked![host] ?? 0), bytes: Number(bytes![host] ?? 0) }))
      .sort((a, b) => b.blocked - a.blocked || b.allowed - a.allowed || a.host.localeCompare(b.host));
  }

  async publishEnforcement(report: EnforcementReport, ttlMs: number): Promise<void> {
    await this.redis.set(this.key('enforcement'), JSON.stringify(report), 'PX', ttlMs);
  }

  async clearEnforcement(): Promise<void> {
    await this.redis.del(this.key('enforcement'));
  }

  async enforcement(): Promise<EnforcementReport | null> {
    const raw = await this.redis.get(this.key('enforcement'));
    return raw ? (JSON.parse(raw) as EnforcementReport) : null;
  }

  private async busy(): Promise<boolean> {
    const counts = await Promise.all(BUSY_QUEUES.map((q) => this.queues.queue[q].getJobCounts(...BUSY_STATES)));
    return counts.some((c) => Object.values(c).some((n) => n > 0));
  }

  /** When the newest finished download or node install finished (BullMQ keeps finished jobs). */
  private async lastActivityAt(): Promise<number | null> {
    const newest = await Promise.all(BUSY_QUEUES.map((q) => this.queues.queue[q].getJobs(['completed', 'failed'], 0, 0, false)));
    const times = newest.flat().map((j) => j?.finishedOn ?? 0);
    const last = Math.max(0, ...times);
    return last > 0 ? last : null;
  }

  private async knownHost(host: string): Promise<boolean> {
    const key = this.key('hosts:bytes');
    if (await this.redis.hexists(key, host)) return true;
    return (await this.redis.hlen(key)) < MAX_HOSTS;
  }

  private key(name: string): string {
    return `${this.queues.prefix}:privacy:${name}`;
  }
}
