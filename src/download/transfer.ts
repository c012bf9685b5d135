import type { FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TransientError, UserError } from '../lib/errors.js';
import { parseRetryAfter } from '../lib/http.js';
import { type Connector, type OpenedResponse, parseContentRange, type ResponseBody } from './connector.js';
import { isNoSpace } from './disk.js';
import type { OrderedHasher } from './ordered-hasher.js';
import type { RangeSet } from './ranges.js';

/** Received bytes are written in batches of at least this size with one positional writev. */
const WRITE_BATCH_BYTES = 256 * 1024;
/**
 * While a write is in flight the next batch may grow to this size before the connection is
 * paused: pausing makes the socket buffer what arrives and hand it over later as one copied
 * block, so it is kept for a disk that truly lags behind.
 */
const PAUSE_BYTES = 512 * 1024;
const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 5_000;

/** What opening a request needs. */
export interface OpenContext {
  connector: Connector;
  /** Aborted when the whole download stops (caller's signal or another connection's fatal error). */
  signal: AbortSignal;
  stallTimeoutMs: number;
  retries: number;
  maxRetryAfterWaitMs: number;
  /** Known total size, used to check every Content-Range. */
  total: number | undefined;
}

/** What every connection of one download shares. */
export interface TransferContext extends OpenContext {
  file: FileHandle;
  written: RangeSet;
  hasher: OrderedHasher;
  onReceived(bytes: number): void;
  onWritten(): void;
}

/** A failure worth retrying within the call: reset, stall, early end, 5xx, 429. */
class Hiccup extends Error {
  constructor(
    message: string,
    readonly delayMs?: number,
  ) {
    super(message);
  }
}

/**
 * Opens `bytes=start-(end-1)` and checks the answer: a 206 must carry exactly the asked range (its
 * end clamped to the file's size), a 200 means the server ignored Range and is left to the caller.
 */
export async function openRange(ctx: OpenContext, start: number, end: number, signal: AbortSignal): Promise<OpenedResponse> {
  const asked = `bytes=${start}-${Number.isFinite(end) ? end - 1 : ''}`;
  const response = await ctx.connector.open({ range: asked }, signal);
  const { status, headers, body } = response;
  const what = `GET ${ctx.connector.where}`;
  if (status === 206) {
    const got = parseContentRange(headers['content-range']);
    const total = got?.total ?? ctx.total;
    const expectedEnd = total === undefined ? end : Math.min(end, total);
    if (!got || got.start !== start || got.end !== expectedEnd || (ctx.total !== undefined && got.total !== ctx.total)) {
      body.destroy();
      throw new TransientError(
        `${what}: answered Content-Range "${headers['content-range'] ?? ''}" to Range "${asked}"; data not used`,
      );
    }
    return response;
  }
  if (status === 200) return response;
  body.discard();
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    if (retryAfterMs !== undefined && retryAfterMs > ctx.maxRetryAfterWaitMs) {
      throw new TransientError(`${what}: HTTP ${status}, asked to retry after ${Math.ceil(retryAfterMs / 1000)}s`, {
        retryAfterMs,
      });
    }
    throw new Hiccup(`HTTP ${status}`, retryAfterMs);
  }
  if (status === 416) throw new TransientError(`${what}: HTTP 416, the file changed on the server; starting over`);
  throw new UserError(`${what}: HTTP ${status}`);
}

/** openRange with in-call retries (Retry-After honoured, backoff with jitter otherwise). */
export async function openRangeRetrying(ctx: OpenContext, start: number, end: number): Promise<OpenedResponse> {
  for (let failures = 1; ; failures++) {
    try {
      return await withWatchdog(ctx, (signal) => openRange(ctx, start, end, signal));
    } catch (err) {
      await pauseBeforeRetry(ctx, err, failures, start);
    }
  }
}

/**
 * Fetches [start, end) on one connection, resuming from the last byte received after a reset or a
 * stall. `first` is an already opened response for that range (the probe). Returns the end
 * position, which is the file's size when `end` was unknown (Infinity).
 */
export async function fetchRange(ctx: TransferContext, start: number, end: number, first?: OpenedResponse): Promise<number> {
  const position = { at: start };
  let failures = 0;
  let response = first;
  while (position.at < end) {
    const before = position.at;
    try {
      await withWatchdog(ctx, async (signal, watchdog) => {
        const opened = response ?? (await openRange(ctx, position.at, end, signal));
        response = undefined;
        if (opened.status !== 206 && !(opened === first && position.at === 0)) {
          opened.body.destroy();
          throw new TransientError(`GET ${ctx.connector.where}: the server ignored Range; the download restarts from byte 0`);
        }
        // The probe's response was opened under another signal: tie its body to this attempt's.
        const drop = (): void => void opened.body.destroy(signal.reason as Error);
        signal.addEventListener('abort', drop, { once: true });
        try {
          await receive(ctx, opened.body, position, end, watchdog);
        } finally {
          signal.removeEventListener('abort', drop);
        }
      });
      if (!Number.isFinite(end)) return position.at;
      if (position.at < end) throw new Hiccup(`connection closed at byte ${position.at} of ${end}`);
    } catch (err) {
      failures = position.at > before ? 1 : failures + 1;
      await pauseBeforeRetry(ctx, err, failures, position.at);
    }
  }
  return position.at;
}

/**
 * Receives one response body into the part file. Chunks are gathered into batches written with
 * one positional writev each, one write in flight at a time: the next batch grows while it runs,
 * and the connection is paused only when that batch reaches PAUSE_BYTES. When this returns or
 * throws, every byte before `position.at` is on disk: a failed write moves it back to where that
 * write began.
 */
async function receive(
  ctx: TransferContext,
  body: ResponseBody,
  position: { at: number },
  end: number,
  watchdog: NodeJS.Timeout,
): Promise<void> {
  let batch: Buffer[] = [];
  let batchStart = position.at;
  let batchBytes = 0;
  let writing: Promise<void> | undefined;
  let failure: Error | undefined;
  const write = (): void => {
    const [buffers, at, bytes] = [batch, batchStart, batchBytes];
    [batch, batchStart, batchBytes] = [[], at + bytes, 0];
    writing = writeAllAt(ctx.file, buffers, at).then(
      () => {
        writing = undefined;
        ctx.written.add(at, at + bytes);
        ctx.hasher.drain();
        ctx.onWritten();
        if (batchBytes >= WRITE_BATCH_BYTES) write();
        if (batchBytes < PAUSE_BYTES) body.resume();
      },
      (err: unknown) => {
        writing = undefined;
        failure ??= err as Error;
        // Batches are written in order: the next attempt resumes at the first byte not on disk.
        position.at = Math.min(position.at, at);
        body.destroy(failure);
      },
    );
  };
  let dropped: unknown;
  await body
    .consume((data) => {
      watchdog.refresh();
      const chunk = position.at + data.length > end ? data.subarray(0, end - position.at) : data;
      if (chunk.length === 0) return;
      position.at += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      ctx.onReceived(chunk.length);
      if (batchBytes < WRITE_BATCH_BYTES) return;
      if (!writing) write();
      else if (batchBytes >= PAUSE_BYTES) body.pause();
    })
    .catch((err: unknown) => {
      dropped = err;
    });
  while (writing) await writing;
  if (!failure && batchBytes > 0) write();
  while (writing) await writing;
  if (failure) throw failure;
  if (dropped) throw dropped;
}

/** Runs one request attempt under a stall watchdog that aborts it after stallTimeoutMs of silence. */
async function withWatchdog<T>(
  ctx: OpenContext,
  run: (signal: AbortSignal, watchdog: NodeJS.Timeout) => Promise<T>,
): Promise<T> {
  const attempt = new AbortController();
  const seconds = ctx.stallTimeoutMs / 1000;
  const watchdog = setTimeout(() => attempt.abort(new Hiccup(`no byte for ${seconds}s`)), ctx.stallTimeoutMs);
  try {
    return await run(AbortSignal.any([ctx.signal, attempt.signal]), watchdog);
  } catch (err) {
    if (attempt.signal.aborted && !ctx.signal.aborted) throw attempt.signal.reason as Error;
    throw err;
  } finally {
    clearTimeout(watchdog);
  }
}

/** Decides whether a failed attempt is retried within this call, and waits before it. */
async function pauseBeforeRetry(ctx: OpenContext, err: unknown, failures: number, at: number): Promise<void> {
  if (ctx.signal.aborted) throw err;
  // A full disk does not empty by retrying: the download ends at once, keeping what it wrote.
  if (err instanceof UserError || err instanceof TransientError || isNoSpace(err)) throw err;
  const delayMs = err instanceof Hiccup ? err.delayMs : undefined;
  if (failures > ctx.retries) {
    throw new TransientError(
      `download of ${ctx.connector.where} failed ${failures} times in a row at byte ${at}: ${describe(err)}`,
      { cause: err, ...(delayMs !== undefined ? { retryAfterMs: delayMs } : {}) },
    );
  }
  const backoff = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
  const jitter = Math.random() * (delayMs === undefined ? backoff / 2 : 250);
  await sleep((delayMs ?? backoff / 2) + jitter, undefined, { signal: ctx.signal });
}

async function writeAllAt(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending, at);
    at += bytesWritten;
    let skip = bytesWritten;
    while (pending.length > 0 && skip >= pending[0]!.length) {
      skip -= pending[0]!.length;
      pending = pending.slice(1);
    }
    if (skip > 0) pending = [pending[0]!.subarray(skip), ...pending.slice(1)];
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  return code ? `${(err as Error).message} (${code})` : (err as Error).message;
}
