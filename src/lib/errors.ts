/**
 * Three kinds of failure, three behaviours:
 * - UserError: the request or the environment is wrong (bad input, missing token, gated repo).
 *   Retrying cannot help; the message tells the user what to do. Workers turn it into
 *   BullMQ's UnrecoverableError.
 * - TransientError: network, 5xx, 429, a stall. Thrown as is so BullMQ retries with backoff;
 *   `retryAfterMs` (from Retry-After) overrides the backoff delay for the next attempt.
 * - anything else: a bug; retried like a transient error and logged with its stack.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

export class TransientError extends Error {
  override readonly name = 'TransientError';
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Downloaded bytes whose SHA-256 is not the one expected: discarded, and retried like any transient failure. */
export class ChecksumMismatch extends TransientError {}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
