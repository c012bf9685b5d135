import { setMaxListeners } from 'node:events';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { ChecksumMismatch, TransientError } from '../lib/errors.js';
import { statIfExists } from '../lib/fs.js';
import { Connector, type OpenedResponse, parseContentRange } from './connector.js';
import { discardPartial, diskFullError, ensureFreeSpace, isNoSpace } from './disk.js';
import { OrderedHasher } from './ordered-hasher.js';
import { type ByteRange, RangeSet } from './ranges.js';
import { type PartState, readState, urlIdentity, writeState } from './state.js';
import { fetchRange, type OpenContext, openRangeRetrying, type TransferContext } from './transfer.js';
import type { DownloadRequest } from './types.js';

export { discardPartial } from './disk.js';

export interface TransferProgress {
  bytesDone: number;
  bytes: number | undefined;
  bytesPerSecond: number;
}

export interface DownloadFileOptions {
  request: DownloadRequest;
  /** Where the bytes go: a hidden file on the destination's filesystem. */
  partPath: string;
  expectedBytes?: number;
  expectedSha256?: string;
  /** Ranged connections per file (DOWNLOAD_CONNECTIONS). */
  connections: number;
  /** Drop a connection that delivers nothing for this long (DOWNLOAD_STALL_TIMEOUT). */
  stallTimeoutMs: number;
  signal?: AbortSignal;
  /** Called at most twice a second. */
  onProgress?: (progress: TransferProgress) => void;
  /**
   * Told, a few times a second and once at the end, how far the part file holds every byte from
   * the start: a reader may copy [0, bytes) while the rest still arrives (the mirror's upload does).
   * The value goes back to 0 when the part file is discarded and the download starts over.
   */
  onContiguous?: (bytes: number) => void;
  /** Bytes per ranged request. Default: size / (connections × 4), between 256 KiB and 2 MiB. */
  segmentBytes?: number;
  /** Failures in a row without progress tolerated per connection within one call. Default 5. */
  segmentRetries?: number;
  /** Longest Retry-After waited within the call; a longer one ends it with TransientError.retryAfterMs. Default 30 s. */
  maxRetryAfterWaitMs?: number;
}

export interface DownloadFileResult {
  bytes: number;
  sha256: string;
  /** Bytes found on disk from an earlier, interrupted call and not fetched again. */
  resumedBytes?: number;
  /** False when the server ignored Range and the file came over one connection. */
  ranged?: boolean;
}

const PROGRESS_INTERVAL_MS = 500;
const STATE_INTERVAL_MS = 250;
const MIN_SEGMENT = 256 * 1024;
const MAX_SEGMENT = 2 * 1024 * 1024;

/** The part file's data belongs to another version of the file: discard it and start over. */
class StartOver extends Error {}

/**
 * Downloads one file to `partPath` over parallel ranged connections, hashing while downloading.
 * Progress survives a killed process in `<partPath>.state`; a size or checksum mismatch deletes the
 * data and throws a TransientError so the attempt is retried. On success the part file holds
 * exactly the verified bytes and the sidecar records it complete until the file is published, so
 * a run whose job was lost (Redis restarted empty) is finished by re-hashing, not fetching again.
 * A full disk (ENOSPC) ends the call with a DiskFullError and keeps the data for a resume.
 */
export async function downloadFile(options: DownloadFileOptions): Promise<DownloadFileResult> {
  await mkdir(path.dirname(options.partPath), { recursive: true });
  const connector = new Connector(options.request, Math.max(1, Math.floor(options.connections)));
  try {
    return await new FileDownload(options, connector).run();
  } catch (err) {
    if (!(err instanceof StartOver)) throw err;
    await discardPartial(options.partPath);
    return await new FileDownload(options, connector).run();
  } finally {
    connector.close();
  }
}

class FileDownload {
  private readonly connections: number;
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  private written = new RangeSet();
  private state: PartState | undefined;
  private received = 0;
  private hasher: OrderedHasher | undefined;
  private saving: Promise<void> | undefined;
  private dirty = false;

  constructor(
    private readonly options: DownloadFileOptions,
    private readonly connector: Connector,
  ) {
    this.connections = Math.max(1, Math.floor(options.connections));
    this.signal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal;
    // Every connection may wait on it at once (backoff, Retry-After): not a listener leak.
    setMaxListeners(this.connections + 10, this.signal);
  }

  async run(): Promise<DownloadFileResult> {
    const { options } = this;
    const folder = path.dirname(options.partPath);
    this.state = await this.resumableState();
    this.written = new RangeSet(this.state?.done ?? []);
    const resumedBytes = this.written.size;
    const known = this.state?.total ?? options.expectedBytes;
    if (known !== undefined) await ensureFreeSpace(folder, known - resumedBytes, this.connector.where);

    const segment = segmentSize(known, this.connections, options.segmentBytes);
    const firstGap: ByteRange | undefined = known === undefined ? [0, Number.POSITIVE_INFINITY] : this.written.gaps(known)[0];
    let probe: OpenedResponse | undefined;
    let probeRange: ByteRange | undefined;
    let total = known;
    if (firstGap) {
      probeRange = [firstGap[0], Math.min(firstGap[1], firstGap[0] + segment)];
      probe = await openRangeRetrying(this.openContext(known), probeRange[0], probeRange[1]);
      total = await this.acceptProbe(probe, known);
      if (probe.status === 200) probeRange = [0, total ?? Number.POSITIVE_INFINITY];
      // The first request may ask past the end when the size was not known before it answered.
      else if (total !== undefined) probeRange = [probeRange[0], Math.min(probeRange[1], total)];
    }
    const file = await this.openPartFile(total);
    const hasher = new OrderedHasher(options.partPath, this.written);
    this.hasher = hasher;
    try {
      const ctx: TransferContext = {
        ...this.openContext(total),
        file,
        written: this.written,
        hasher,
        onReceived: (bytes) => {
          this.received += bytes;
        },
        onWritten: () => {
          this.dirty = true;
        },
      };
      const bytes = await this.transfer(ctx, probe, probeRange, total, segment).catch(async (err: unknown) => {
        if (!isNoSpace(err)) throw err;
        throw await diskFullError(options.partPath, this.written.size, total, this.connector.where);
      });
      const sha256 = await hasher.digest(bytes);
      if (options.expectedSha256 && sha256 !== options.expectedSha256.toLowerCase()) {
        await discardPartial(options.partPath);
        throw new ChecksumMismatch(
          `sha256 of ${this.connector.where} is ${sha256}, expected ${options.expectedSha256}: data discarded`,
        );
      }
      await writeState(options.partPath, {
        version: 1,
        urlId: urlIdentity(options.request.url),
        total: bytes,
        validator: this.state?.validator ?? {},
        done: bytes > 0 ? [[0, bytes]] : [],
        hashedBytes: bytes,
      }).catch(() => undefined);
      options.onContiguous?.(bytes);
      return { bytes, sha256, resumedBytes, ranged: probe?.status !== 200 };
    } finally {
      await Promise.all([file.close(), hasher.close()]);
    }
  }

  /** The sidecar if it describes this URL and a part file of the right size; else a clean slate. */
  private async resumableState(): Promise<PartState | undefined> {
    const { options } = this;
    const state = await readState(options.partPath);
    const size = (await statIfExists(options.partPath))?.size;
    const usable =
      state !== undefined &&
      state.urlId === urlIdentity(options.request.identity ?? options.request.url) &&
      (options.expectedBytes === undefined || state.total === options.expectedBytes) &&
      size === state.total;
    if (usable) return state;
    await discardPartial(options.partPath);
    return undefined;
  }

  /** Learns the size and validator from the first response; decides between resume and start over. */
  private async acceptProbe(probe: OpenedResponse, known: number | undefined): Promise<number | undefined> {
    const { options } = this;
    const ranged = probe.status === 206;
    const length = probe.headers['content-length'];
    const total = ranged ? (parseContentRange(probe.headers['content-range'])?.total ?? known) : length ? Number(length) : known;
    const validator = {
      ...(probe.headers.etag ? { etag: probe.headers.etag } : {}),
      ...(probe.headers['last-modified'] ? { lastModified: probe.headers['last-modified'] } : {}),
    };
    if (this.state) {
      const same = JSON.stringify(this.state.validator) === JSON.stringify(validator) && this.state.total === total;
      if (!ranged || !same) {
        probe.body.destroy();
        throw new StartOver();
      }
      return total;
    }
    if (options.expectedBytes !== undefined && total !== undefined && total !== options.expectedBytes) {
      probe.body.destroy();
      throw new TransientError(
        `${this.connector.where} is ${total} bytes on the server, but the source published ${options.expectedBytes}`,
      );
    }
    if (total !== undefined && known === undefined) {
      await ensureFreeSpace(path.dirname(options.partPath), total, this.connector.where).catch((err: unknown) => {
        probe.body.destroy();
        throw err;
      });
    }
    if (ranged && total !== undefined) {
      this.state = { version: 1, urlId: urlIdentity(options.request.identity ?? options.request.url), total, validator, done: [], hashedBytes: 0 };
    }
    return total;
  }

  /** Resumes into the existing part file, or creates a sparse one of the full size. */
  private async openPartFile(total: number | undefined): Promise<FileHandle> {
    if (this.written.size > 0) return open(this.options.partPath, 'r+');
    const file = await open(this.options.partPath, 'w+');
    if (total !== undefined) await file.truncate(total);
    if (this.state) await writeState(this.options.partPath, this.state);
    return file;
  }

  /** Runs the connections over every missing range; returns the file's size. */
  private async transfer(
    ctx: TransferContext,
    probe: OpenedResponse | undefined,
    probeRange: ByteRange | undefined,
    total: number | undefined,
    segment: number,
  ): Promise<number> {
    if (!probe || !probeRange) return total ?? 0;
    const timers = [
      setInterval(() => {
        void this.saveState();
        this.options.onContiguous?.(this.written.coveredUntil(0));
      }, STATE_INTERVAL_MS),
      setInterval(this.progressReporter(total), PROGRESS_INTERVAL_MS),
    ];
    timers.forEach((timer) => timer.unref());
    try {
      if (probe.status === 200) return await fetchRange(ctx, probeRange[0], probeRange[1], probe);
      const pieces = splitGaps(this.written.gaps(total!), probeRange, segment);
      const failures: unknown[] = [];
      const worker = async (first?: OpenedResponse): Promise<void> => {
        if (first) await fetchRange(ctx, probeRange[0], probeRange[1], first);
        for (let piece = pieces.shift(); piece; piece = pieces.shift()) await fetchRange(ctx, piece[0], piece[1]);
      };
      const workers = Array.from({ length: this.connections }, (_, i) =>
        worker(i === 0 ? probe : undefined).catch((err: unknown) => {
          failures.push(err);
          this.stop.abort(err);
        }),
      );
      await Promise.all(workers);
      if (failures.length > 0) throw failures[0];
      return total!;
    } catch (err) {
      this.stop.abort(err);
      throw err;
    } finally {
      timers.forEach(clearInterval);
      await this.saving;
      if (this.dirty) await this.saveState();
    }
  }

  private openContext(total: number | undefined): OpenContext {
    return {
      connector: this.connector,
      signal: this.signal,
      stallTimeoutMs: this.options.stallTimeoutMs,
      retries: this.options.segmentRetries ?? 5,
      maxRetryAfterWaitMs: this.options.maxRetryAfterWaitMs ?? 30_000,
      total,
    };
  }

  /** Writes the sidecar when something changed; one write at a time. */
  private async saveState(): Promise<void> {
    if (!this.state || !this.dirty || this.saving) return;
    this.dirty = false;
    this.state = { ...this.state, done: this.written.toJSON(), hashedBytes: this.hasher?.hashed ?? 0 };
    this.saving = writeState(this.options.partPath, this.state)
      .catch(() => {
        this.dirty = true;
      })
      .finally(() => {
        this.saving = undefined;
      });
    await this.saving;
  }

  private progressReporter(total: number | undefined): () => void {
    const start = this.written.size;
    let lastAt = Date.now();
    let lastBytes = start;
    return () => {
      const now = Date.now();
      const bytesDone = start + this.received;
      const bytesPerSecond = ((bytesDone - lastBytes) * 1000) / Math.max(1, now - lastAt);
      [lastAt, lastBytes] = [now, bytesDone];
      this.options.onProgress?.({ bytesDone, bytes: total, bytesPerSecond });
    };
  }
}

function segmentSize(total: number | undefined, connections: number, override: number | undefined): number {
  if (override) return override;
  if (total === undefined) return 1024 * 1024;
  const even = Math.ceil(total / (connections * 4) / 65536) * 65536;
  return Math.min(MAX_SEGMENT, Math.max(MIN_SEGMENT, even));
}

/** The missing ranges in file order, cut into segments, without the probe's range. */
function splitGaps(gaps: ByteRange[], probe: ByteRange, segment: number): ByteRange[] {
  const pieces: ByteRange[] = [];
  for (const [gapStart, gapEnd] of gaps) {
    let start = gapStart === probe[0] ? probe[1] : gapStart;
    while (start < gapEnd) {
      const end = Math.min(gapEnd, start + segment);
      pieces.push([start, end]);
      start = end;
    }
  }
  return pieces;
}
