export interface ThrottleOptions {
  /** Failures a client may make before it has to wait (typos happen). */
  freeFailures?: number;
  /** The first wait; it doubles with each further failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A client with no failure for this long starts afresh. */
  forgetAfterMs?: number;
  /** Clients remembered at most; the longest quiet go first. */
  maxClients?: number;
  now?: () => number;
}

interface Failures {
  count: number;
  last: number;
  /** Until when its credentials are not even checked. */
  blockedUntil: number;
}

/**
 * Failed logins per client, on every path that checks a password or token (form, Basic, Bearer,
 * both ports). After `freeFailures`, each failure locks the client out for twice as long as the
 * one before (1 s, 2 s, 4 s … up to 15 min): while locked out, its attempts are answered 429 with
 * Retry-After without being checked, so guesses cannot run in parallel either. A success clears it.
 */
export class LoginThrottle {
  private readonly clients = new Map<string, Failures>();
  private readonly freeFailures: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly forgetAfterMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: ThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 15 * 60 * 1000;
    this.forgetAfterMs = options.forgetAfterMs ?? 60 * 60 * 1000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** How long the client must still wait before its credentials are checked; 0 when it may try. */
  waitMs(client: string): number {
    const f = this.clients.get(client);
    return f ? Math.max(0, f.blockedUntil - this.now()) : 0;
  }

  /** Records a failure; returns how long the client now has to wait (0 while failures are free). */
  failed(client: string): number {
    const now = this.now();
    this.forgetQuiet(now);
    const previous = this.clients.get(client);
    const count = (previous?.count ?? 0) + 1;
    const over = count - this.freeFailures;
    const delay = over > 0 ? Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(over - 1, 30)) : 0;
    // Re-inserted so the map's order is quietest first.
    this.clients.delete(client);
    this.clients.set(client, { count, last: now, blockedUntil: now + delay });
    if (this.clients.size > this.maxClients) this.clients.delete(this.clients.keys().next().value!);
    return delay;
  }

  succeeded(client: string): void {
    this.clients.delete(client);
  }

  private forgetQuiet(now: number): void {
    for (const [client, f] of this.clients) {
      if (now - f.last < this.forgetAfterMs) break;
      this.clients.delete(client);
    }
  }
}
