import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { TransientError } from '../lib/errors.js';
import { fetchFollowing, httpError } from '../lib/http.js';
import type { DownloadRequest } from '../sources/types.js';

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
}

export interface DownloadFileResult {
  bytes: number;
  sha256: string;
}

const PROGRESS_INTERVAL_MS = 500;

/**
 * Downloads one file to `partPath`, hashing while streaming so no second read is needed.
 * Size and checksum are checked against what the source published; a mismatch deletes the data
 * and throws a TransientError so the attempt is retried.
 */
export async function downloadFile(options: DownloadFileOptions): Promise<DownloadFileResult> {
  const { request } = options;
  await mkdir(path.dirname(options.partPath), { recursive: true });
  const stall = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stall.signal]) : stall.signal;
  const { response } = await fetchFollowing(request.url, {
    secretHeaders: request.headers,
    secretOrigin: request.headersOrigin ?? new URL(request.url).origin,
    signal,
  });
  const where = `${new URL(request.url).origin}${new URL(request.url).pathname}`;
  if (response.status !== 200 || !response.body) throw httpError(`GET ${where}`, response);
  const lengthHeader = response.headers.get('content-length');
  const total = options.expectedBytes ?? (lengthHeader ? Number(lengthHeader) : undefined);

  const hash = createHash('sha256');
  let done = 0;
  let lastReport = 0;
  let lastReportBytes = 0;
  const stallTimer = setTimeout(() => stall.abort(), options.stallTimeoutMs);
  const meter = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      hash.update(chunk);
      done += chunk.length;
      stallTimer.refresh();
      const now = Date.now();
      if (options.onProgress && now - lastReport >= PROGRESS_INTERVAL_MS) {
        const seconds = lastReport ? (now - lastReport) / 1000 : 1;
        options.onProgress({ bytesDone: done, bytes: total, bytesPerSecond: (done - lastReportBytes) / seconds });
        lastReport = now;
        lastReportBytes = done;
      }
      callback(null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
      meter,
      createWriteStream(options.partPath),
    );
  } catch (err) {
    await rm(options.partPath, { force: true });
    if (options.signal?.aborted) throw err;
    const reason = stall.signal.aborted ? `no byte for ${options.stallTimeoutMs / 1000}s` : (err as Error).message;
    throw new TransientError(`download of ${where} broke off after ${done} bytes: ${reason}`, { cause: err });
  } finally {
    clearTimeout(stallTimer);
  }

  const sha256 = hash.digest('hex');
  if (total !== undefined && done !== total) {
    await rm(options.partPath, { force: true });
    throw new TransientError(`download of ${where} ended at ${done} of ${total} bytes`);
  }
  if (options.expectedSha256 && sha256 !== options.expectedSha256) {
    await rm(options.partPath, { force: true });
    throw new TransientError(`sha256 of ${where} is ${sha256}, expected ${options.expectedSha256}: data discarded`);
  }
  options.onProgress?.({ bytesDone: done, bytes: done, bytesPerSecond: 0 });
  return { bytes: done, sha256 };
}
