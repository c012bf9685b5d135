import type { Logger } from './log.js';
import type { RedisClient } from './redis-client.js';

/** While Redis stays away, how often the log says so again. */
const REMIND_EVERY_MS = 30_000;

/**
 * Follows one Redis connection for the people reading the log and the clients of the API. Losing
 * it is logged once (and again every 30 s while it lasts), its return once with how long it was
 * away — not one line per reconnect attempt. `problem()` says why Redis is unavailable, for a 503.
 */
export class RedisHealth {
  private downSince: number | undefined;
  private lastError: string | undefined;
  private reminder: NodeJS.Timeout | undefined;

  /** `log` undefined: only `problem()` is wanted (another RedisHealth logs for the process). */
  constructor(
    private readonly connection: RedisClient,
    private readonly where: string,
    private readonly log?: Logger,
  ) {
    connection.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    connection.on('close', () => {
      if (this.downSince === undefined) this.lastError = 'the connection closed';
    });
    connection.on('reconnecting', () => this.lost());
    connection.on('ready', () => this.back());
    connection.on('end', () => clearInterval(this.reminder));
  }

  /**
   * Why commands cannot run now, or undefined when the connection is ready. `cause`: a command
   * failed for want of Redis before the connection noticed it was gone.
   */
  problem(cause?: Error): string | undefined {
    if (this.connection.status === 'ready' && !cause) return undefined;
    const since = this.downSince !== undefined ? ` for ${Math.round((Date.now() - this.downSince) / 1000)}s` : '';
    return `Redis at ${this.where} is unavailable${since} (${cause?.message ?? this.lastError ?? this.connection.status})`;
  }

  private lost(): void {
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.log?.error({ redis: this.where, err: this.lastError }, 'lost the connection to Redis; reconnecting');
    this.reminder = setInterval(() => this.log?.error({ redis: this.where, err: this.lastError }, this.problem() ?? 'Redis is back'), REMIND_EVERY_MS);
    this.reminder.unref();
  }

  private back(): void {
    clearInterval(this.reminder);
    if (this.downSince === undefined) return;
    this.log?.info({ redis: this.where, downSeconds: Math.round((Date.now() - this.downSince) / 100) / 10 }, 'Redis is back');
    this.downSince = undefined;
  }
}

/** Whether an error comes from Redis being unreachable rather than from the command itself. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code && ['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(e.code)) return true;
  return /Connection is closed|Stream isn't writeable|Command timed out|connect E[A-Z]+|MaxRetriesPerRequestError|Reached the max retries/i.test(e?.message ?? '');
}
