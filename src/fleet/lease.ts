import { randomUUID } from 'node:crypto';
import { TransientError } from '../lib/errors.js';
import type { RedisClient } from '../lib/redis-client.js';

/** Who fetches a file right now, and how far it got (what waiting pods show). */
export interface LeaseHolder {
  pod: string;
  bytesDone: number;
  bytes: number | null;
  since: number;
}

/** What the holder left when it finished: waiting pods take it from there. */
export interface LeaseOutcome {
  pod: string;
  /** The file's SHA-256 (a file lease; a model's lease on a volume has none). */
  sha256?: string;
  bytes: number;
  /** The file is in the model mirror under its sha256. */
  mirrored: boolean;
  at: number;
}

/** A lease lapses this long after its holder stopped renewing it (a killed pod). */
export const LEASE_TTL_MS = 10_000;
/** Outcomes are kept a day: long enough for every pod of a fleet start, short enough to stay small. */
const OUTCOME_TTL_MS = 24 * 3600_000;

// Acquiring also reads the outcome the previous holder left, in the same step: a holder that
// finished just before is never mistaken for one that never was. The outcome key shares the
// lease key's hash tag (the fleet prefix), so this two-key script runs on a Redis Cluster too;
// the others touch one key.
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'pod', ARGV[2], 'since', ARGV[3], 'bytesDone', '0', 'bytes', '')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, redis.call('GET', KEYS[2]) or ''}`;
const RENEW = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'bytesDone', ARGV[2], 'bytes', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;
const RELEASE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`;

/**
 * Fleet-wide leases in Redis: at most one pod holds a name at a time. A holder renews its lease
 * while it works; when it dies the lease lapses after LEASE_TTL_MS and another pod takes over.
 */
export class Leases {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly pod: string,
    private readonly ttlMs = LEASE_TTL_MS,
  ) {}

  /**
   * The lease, or undefined when another pod holds it. The lease carries the outcome an earlier
   * holder left (`previous`): the new holder checks whether the work is already done before
   * redoing it, and calls `begin()` when it does redo it.
   */
  async tryAcquire(name: string): Promise<Lease | undefined> {
    const token = randomUUID();
    const [got, previous] = (await this.redis.eval(
      ACQUIRE, 2, this.key(name), this.outcomeKey(name), token, this.pod, String(Date.now()), String(this.ttlMs),
    )) as [number, string?];
    if (got !== 1) return undefined;
    const outcome = previous ? (JSON.parse(previous) as LeaseOutcome) : undefined;
    return new Lease(this.redis, this.key(name), this.outcomeKey(name), token, this.pod, this.ttlMs, outcome);
  }

  async holder(name: string): Promise<LeaseHolder | undefined> {
    const h = await this.redis.hgetall(this.key(name));
    if (!h.pod) return undefined;
    return { pod: h.pod, bytesDone: Number(h.bytesDone ?? 0), bytes: h.bytes ? Number(h.bytes) : null, since: Number(h.since ?? 0) };
  }

  async outcome(name: string): Promise<LeaseOutcome | undefined> {
    const raw = await this.redis.get(this.outcomeKey(name));
    return raw ? (JSON.parse(raw) as LeaseOutcome) : undefined;
  }

  private key(name: string): string {
    return `${this.prefix}:lease:${name}`;
  }

  private outcomeKey(name: string): string {
    return `${this.prefix}:lease-outcome:${name}`;
  }
}

/** A held lease: renewed in the background; `signal` aborts when it is lost to another pod. */
export class Lease {
  private readonly lost = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private progress: { bytesDone: number; bytes: number | null } = { bytesDone: 0, bytes: null };

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly outcomeKey: string,
    private readonly token: string,
    private readonly pod: string,
    private readonly ttlMs: number,
    /** What the holder before left, if anything. */
    readonly previous: LeaseOutcome | undefined,
  ) {
    // Renewals also carry the progress waiting pods show: at least once a second.
    this.timer = setInterval(() => void this.renew(), Math.min(1000, Math.max(200, Math.floor(ttlMs / 3))));
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.lost.signal;
  }

  /** The work starts anew: an outcome an earlier holder left no longer speaks for this name. */
  async begin(): Promise<void> {
    await this.redis.del(this.outcomeKey);
  }

  report(bytesDone: number, bytes: number | undefined): void {
    this.progress = { bytesDone, bytes: bytes ?? null };
  }

  /** Leaves the outcome for the pods that wait, then lets the lease go. */
  async complete(outcome: Omit<LeaseOutcome, 'pod' | 'at'>): Promise<void> {
    const value: LeaseOutcome = { ...outcome, pod: this.pod, at: Date.now() };
    await this.redis.set(this.outcomeKey, JSON.stringify(value), 'PX', OUTCOME_TTL_MS);
    await this.release();
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.redis.eval(RELEASE, 1, this.key, this.token);
  }

  private async renew(): Promise<void> {
    try {
      const { bytesDone, bytes } = this.progress;
      const kept = await this.redis.eval(RENEW, 1, this.key, this.token, String(bytesDone), bytes === null ? '' : String(bytes), String(this.ttlMs));
      if (kept === 1) return;
      clearInterval(this.timer);
      this.lost.abort(new TransientError(`lost the lease ${this.key} to another pod (this one stopped renewing it in time)`));
    } catch {
      // Redis unreachable: keep working; if the lease lapsed meanwhile, the next renewal says so.
    }
  }
}
