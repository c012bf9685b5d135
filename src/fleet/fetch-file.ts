import { setTimeout as sleep } from 'node:timers/promises';
import { downloadFile, type DownloadFileOptions, type DownloadFileResult } from '../download/engine.js';
import type { DownloadRequest } from '../download/types.js';
import { ChecksumMismatch, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { shortHash } from '../lib/names.js';
import { MirrorUnavailable } from '../mirror/errors.js';
import type { ModelMirror } from '../mirror/store.js';
import type { ByteSource, PodCounters } from './counters.js';
import type { Lease, LeaseHolder, Leases } from './lease.js';

/** One file of a model, as its source resolved it. */
export interface FileToFetch {
  modelId: string;
  /** The model's source (civitai, huggingface, url, gdrive), for the byte counters. */
  source: string;
  name: string;
  bytes?: number;
  /** The SHA-256 the source or the manifest gives, when known before the download. */
  sha256?: string;
  request: DownloadRequest;
  partPath: string;
}

export type FetchProgress =
  | { kind: 'downloading'; from: ByteSource; bytesDone: number; bytes?: number; bytesPerSecond: number }
  | { kind: 'waiting'; holder: LeaseHolder };

export interface FetchContext {
  /** Fleet-wide leases; undefined without a shared Redis (or while it cannot be reached). */
  leases: Leases | undefined;
  mirror: ModelMirror | undefined;
  counters: PodCounters;
  log: Logger;
  engine: { connections: number; stallTimeoutMs: number };
  /** Aborts the fetch (this pod lost its turn on the volume). */
  signal?: AbortSignal;
  onProgress(progress: FetchProgress): void;
}

export interface FetchedFile {
  from: ByteSource;
  bytes: number;
  sha256: string;
}

/** How often a pod that waits for another looks again. */
export const WAIT_POLL_MS = 500;

/**
 * Gets one file's bytes into its part file, fetching it from its origin at most once per fleet:
 *
 * 1. Known SHA-256 and a mirror holding it → parallel ranged GETs from the mirror, verified
 *    against the hash in its name. A wrong object is reported and never used; the pod then
 *    fetches from the origin and replaces it.
 * 2. Otherwise the pod asks for the fleet's origin lease of the file. The holder fetches from the
 *    origin and streams the bytes into a multipart upload while they land on its disk (a file whose
 *    hash is only known after the download is uploaded then, under that hash); the others show
 *    "waiting for <pod>" with its progress and pull from the mirror once it is there.
 * 3. The mirror or the Redis unreachable, or the upload failed → straight from the origin.
 */
export async function fetchFile(file: FileToFetch, ctx: FetchContext): Promise<FetchedFile> {
  const log = ctx.log.child({ file: file.name });
  const originLease = `origin:${leaseKey(file)}`;
  let mirror = ctx.mirror;
  let shortSeen = false;
  for (;;) {
    ctx.signal?.throwIfAborted();
    if (!mirror) return fromOrigin(file, ctx, undefined, undefined);
    const sha256 = file.sha256 ?? (await coordinated(ctx, log, (l) => l.outcome(originLease)))?.value?.sha256;
    if (sha256) {
      const pulled = await fromMirror(file, sha256, mirror, ctx).catch((err: unknown) => err as Error);
      if (pulled instanceof ShortObject && !shortSeen) {
        // Some stores show an object while its upload still completes: look once more before calling it corrupt.
        shortSeen = true;
        await sleep(WAIT_POLL_MS, undefined, ctx.signal ? { signal: ctx.signal } : {});
        continue;
      }
      if (pulled instanceof ChecksumMismatch) {
        log.error({ object: mirror.where(sha256), err: pulled.message }, 'the mirror holds a corrupt copy: not used; fetching from the origin to replace it');
        void ctx.counters.addVerificationFailure('mirror').catch(() => undefined);
        return fromOrigin(file, ctx, mirror, undefined);
      }
      if (pulled instanceof Error) {
        log.warn({ err: pulled.message }, 'the model mirror cannot be read: fetching from the origin');
        mirror = undefined;
        continue;
      }
      if (pulled) return pulled;
    }

    const lease = await coordinated(ctx, log, (l) => l.tryAcquire(originLease));
    if (!lease) return fromOrigin(file, ctx, mirror, undefined);
    if (lease.value) {
      // The holder before may have finished between this pod's look in the mirror and now.
      const known = sha256 ?? lease.value.previous?.sha256;
      if (known && (await mirror.head(known).catch(() => undefined))) {
        await lease.value.release();
        continue;
      }
      await lease.value.begin();
      return fromOrigin(file, ctx, mirror, lease.value);
    }
    const outcome = await coordinated(ctx, log, (l) => l.outcome(originLease));
    // Redis gone, or the holder could not upload it: nothing to wait for.
    if (!outcome || (outcome.value && !outcome.value.mirrored)) return fromOrigin(file, ctx, undefined, undefined);
    if (!outcome.value) {
      const holder = await coordinated(ctx, log, (l) => l.holder(originLease));
      if (holder?.value) ctx.onProgress({ kind: 'waiting', holder: holder.value });
    }
    await sleep(WAIT_POLL_MS, undefined, ctx.signal ? { signal: ctx.signal } : {});
  }
}

/** A mirror object of another size than the file's: corrupt, or (on some stores) still being completed. */
class ShortObject extends ChecksumMismatch {}

/** The lease name of a file: its hash, or (hash unknown before the download) the model and file name. */
function leaseKey(file: FileToFetch): string {
  return file.sha256 ? `sha256-${file.sha256}` : `file-${shortHash(`${file.modelId}/${file.name}`, 32)}`;
}

/** Undefined when the mirror does not hold it. Throws ChecksumMismatch for a corrupt object, MirrorUnavailable when unreachable. */
async function fromMirror(file: FileToFetch, sha256: string, mirror: ModelMirror, ctx: FetchContext): Promise<FetchedFile | undefined> {
  const head = await mirror.head(sha256);
  if (!head) return undefined;
  if (file.bytes !== undefined && head.bytes !== file.bytes) {
    throw new ShortObject(`${mirror.where(sha256)} is ${head.bytes} bytes, the source published ${file.bytes}`);
  }
  const url = await mirror.readUrl(sha256);
  const result = await download(file, ctx, 'mirror', {
    request: { url, headers: {}, identity: `mirror:${sha256}` },
    expectedBytes: head.bytes,
    expectedSha256: sha256,
  }).catch((err: unknown) => {
    if (err instanceof ChecksumMismatch) throw err;
    throw new MirrorUnavailable(`reading ${mirror.where(sha256)} failed: ${errorMessage(err)}`, { cause: err });
  });
  ctx.log.info({ file: file.name, object: mirror.where(sha256), bytes: result.bytes }, 'pulled from the model mirror');
  return { from: 'mirror', bytes: result.bytes, sha256: result.sha256 };
}

/**
 * From the file's origin, with the source's own request (tokens stay in it, sent only to their
 * origin). With a mirror, the bytes are uploaded under their hash: streamed while downloading when
 * the hash is known before, uploaded after verification when it is not.
 */
async function fromOrigin(file: FileToFetch, ctx: FetchContext, mirror: ModelMirror | undefined, lease: Lease | undefined): Promise<FetchedFile> {
  const upload = mirror && file.sha256 ? mirror.upload(file.sha256, file.partPath, file.bytes !== undefined ? { expectedBytes: file.bytes } : {}) : undefined;
  let result: DownloadFileResult;
  try {
    result = await download(file, ctx, 'origin', {
      request: file.request,
      ...(file.bytes !== undefined ? { expectedBytes: file.bytes } : {}),
      ...(file.sha256 ? { expectedSha256: file.sha256 } : {}),
      ...(lease ? { signal: ctx.signal ? AbortSignal.any([ctx.signal, lease.signal]) : lease.signal } : {}),
      ...(upload ? { onContiguous: (bytes: number) => upload.grow(bytes) } : {}),
      lease,
    });
  } catch (err) {
    await upload?.abort();
    await lease?.release().catch(() => undefined);
    if (err instanceof ChecksumMismatch) void ctx.counters.addVerificationFailure('origin').catch(() => undefined);
    throw err;
  }
  const mirrored = mirror ? await uploadVerified(file, result, mirror, upload, ctx.log) : false;
  await lease?.complete({ sha256: result.sha256, bytes: result.bytes, mirrored }).catch(() => undefined);
  return { from: 'origin', bytes: result.bytes, sha256: result.sha256 };
}

/** Completes (or, hash unknown before, makes) the mirror's copy; a failure costs the fleet a wait, not the file. */
async function uploadVerified(
  file: FileToFetch,
  result: DownloadFileResult,
  mirror: ModelMirror,
  streaming: ReturnType<ModelMirror['upload']> | undefined,
  log: Logger,
): Promise<boolean> {
  const upload = streaming ?? mirror.upload(result.sha256, file.partPath, { expectedBytes: result.bytes });
  try {
    await upload.finish(result.bytes);
    log.info({ file: file.name, object: mirror.where(result.sha256) }, 'uploaded to the model mirror');
    return true;
  } catch (err) {
    await upload.abort();
    log.warn({ file: file.name, err: errorMessage(err) }, 'upload to the model mirror failed: other pods fetch this file from its origin');
    return false;
  }
}

interface DownloadVia {
  request: DownloadRequest;
  expectedBytes?: number;
  expectedSha256?: string;
  signal?: AbortSignal;
  onContiguous?: (bytes: number) => void;
  /** The origin lease this download holds: its progress is what waiting pods show. */
  lease?: Lease | undefined;
}

/** The download engine with the pod's settings; progress goes to the job and to the lease (what waiting pods see). */
async function download(file: FileToFetch, ctx: FetchContext, from: ByteSource, via: DownloadVia): Promise<DownloadFileResult> {
  const started = performance.now();
  const { lease, signal, ...rest } = via;
  const options: DownloadFileOptions = {
    ...rest,
    partPath: file.partPath,
    ...(file.request.singleRequest && from === 'origin'
      ? { connections: 1, segmentBytes: Number.MAX_SAFE_INTEGER }
      : { connections: ctx.engine.connections }),
    stallTimeoutMs: ctx.engine.stallTimeoutMs,
    ...(signal ?? ctx.signal ? { signal: signal ?? ctx.signal } : {}),
    onProgress: (p) => {
      lease?.report(p.bytesDone, p.bytes);
      ctx.onProgress({ kind: 'downloading', from, bytesDone: p.bytesDone, ...(p.bytes !== undefined ? { bytes: p.bytes } : {}), bytesPerSecond: p.bytesPerSecond });
    },
  };
  const result = await downloadFile(options);
  const received = result.bytes - (result.resumedBytes ?? 0);
  void ctx.counters.addDownload(file.source, from, received, (performance.now() - started) / 1000).catch(() => undefined);
  return result;
}

/**
 * A lease operation's answer (in `value`), or undefined when there is no shared Redis or it cannot
 * be reached: then the pod fetches on its own rather than wait.
 */
async function coordinated<T>(ctx: FetchContext, log: Logger, op: (leases: Leases) => Promise<T>): Promise<{ value: T } | undefined> {
  if (!ctx.leases) return undefined;
  try {
    return { value: await op(ctx.leases) };
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'the fleet\'s Redis cannot be reached: fetching without coordination');
    return undefined;
  }
}
