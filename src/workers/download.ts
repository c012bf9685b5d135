import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import { DiskFullError } from '../download/disk.js';
import { downloadFile } from '../download/engine.js';
import { partPath, tempDir } from '../download/paths.js';
import type { DownloadedFile } from '../download/types.js';
import { fetchFile } from '../fleet/fetch-file.js';
import type { Lease, LeaseHolder } from '../fleet/lease.js';
import { takeVolumeTurn } from '../fleet/volume-turn.js';
import { volumeId } from '../fleet/volume.js';
import { UserError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { findInPlace } from '../organize/in-place.js';
import type { DownloadProgress, DownloadResult, FileProgress, JobName, ModelJobData } from '../queue/jobs.js';
import { resolveModel, type ResolvedFile } from '../sources/index.js';
import { withConfiguredSecrets } from './configured.js';
import { jobLogger, trustedModelId, type Handler, type WorkerDeps } from './context.js';

/**
 * download: resolves the model through its source, then downloads each file into the hidden temp
 * area, hashing while streaming. A model already verified on disk is not downloaded again.
 */
export const downloadModel: Handler<typeof JobName.DownloadModel> = async (job, data, deps, signal): Promise<DownloadResult> => {
  const { config } = deps;
  const log = jobLogger(deps, job).child({ model: data.label });
  const id = trustedModelId(data);

  const verified = await alreadyVerified(job, id, data.spec.sha256, deps, log);
  if (verified) return verified;

  try {
    return await fetchModel(job, id, data, deps, log, signal);
  } catch (err) {
    const lastAttempt = err instanceof UserError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    // Kept for a resume: data a full disk interrupted, and a run cancelled because its job was handed out again.
    const resumable = err instanceof DiskFullError || signal?.aborted === true;
    if (lastAttempt && !resumable) await discardTempFiles(config.modelsRoot, id);
    throw err;
  }
};

async function fetchModel(
  job: Job<unknown>,
  id: string,
  data: ModelJobData,
  deps: WorkerDeps,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<DownloadResult> {
  const { config, fleet } = deps;
  await report(job, { phase: 'resolving', bytesDone: 0, bytesPerSecond: 0 });
  const { spec, secretHeaders } = withConfiguredSecrets(config, data.spec);
  const resolved = await resolveModel(spec, { config, log, ...(secretHeaders ? { secretHeaders } : {}), ...(signal ? { signal } : {}) });
  const known = resolved.every((f) => f.bytes !== undefined);
  const total = known ? resolved.reduce((n, f) => n + (f.bytes ?? 0), 0) : undefined;

  const expected = resolved.map((file) => (resolved.length === 1 ? data.spec.sha256 : undefined) ?? file.sha256);
  const progressFiles: FileProgress[] = resolved.map((file, i) => ({
    name: file.name,
    bytes: file.bytes ?? null,
    bytesDone: 0,
    sha256: expected[i] ?? null,
    state: 'queued',
  }));
  await report(job, { phase: 'downloading', bytesDone: 0, ...(total !== undefined ? { bytes: total } : {}), bytesPerSecond: 0, files: progressFiles });
  const waiting = (holder: LeaseHolder): void => void report(job, { ...waitingFor(holder, total), files: progressFiles });

  // Pods on one network volume: one fetches, the others use what it published.
  const turn = fleet.leases
    ? await takeVolumeTurn({
        leases: fleet.leases,
        volume: await volumeId(config.modelsRoot),
        modelId: id,
        isPublished: async () => (await deps.record.validEntries(id, data.spec.sha256)) !== undefined,
        onWaiting: waiting,
        log,
      })
    : undefined;
  if (turn === 'published') return (await alreadyVerified(job, id, data.spec.sha256, deps, log))!;
  try {
    const files = await fetchFiles({ job, id, data, deps, log, resolved, expected, progressFiles, total, turn, waiting, signal });
    // Pods waiting on this volume now wait for the organize job to publish.
    await turn?.complete({ bytes: files.reduce((n, f) => n + f.bytes, 0), mirrored: false }).catch(() => undefined);
    return { files };
  } catch (err) {
    await turn?.release().catch(() => undefined);
    throw err;
  }
}

interface Fetching {
  job: Job<unknown>;
  /** The model's id as derived from its spec (never the one in job data). */
  id: string;
  data: ModelJobData;
  deps: WorkerDeps;
  log: Logger;
  resolved: ResolvedFile[];
  expected: (string | undefined)[];
  progressFiles: FileProgress[];
  total: number | undefined;
  /** This pod's turn on its volume (a shared Redis), whose loss aborts the fetch. */
  turn: Lease | undefined;
  /** The job's own: aborts when the run is cancelled (its job was lost or handed out again). */
  signal: AbortSignal | undefined;
  waiting(holder: LeaseHolder): void;
}

/** Each file: already in place, or fetched through the mirror or from its origin (fleet/fetch-file). */
async function fetchFiles(f: Fetching): Promise<DownloadedFile[]> {
  const { job, id, data, deps, log, progressFiles, total, turn } = f;
  const { config, fleet } = deps;
  const mirror = await fleet.mirror?.get();
  const signals = [turn?.signal, f.signal].filter((x): x is AbortSignal => x !== undefined);
  const abort = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  const files: DownloadedFile[] = [];
  let before = 0;
  for (const [i, file] of f.resolved.entries()) {
    const expectedSha256 = f.expected[i];
    const fileProgress = progressFiles[i]!;
    const inPlace = await findInPlace({
      modelsRoot: config.modelsRoot,
      record: deps.record,
      modelId: id,
      name: file.name,
      category: data.spec.category ?? file.category,
      bytes: file.bytes,
      sha256: expectedSha256,
    });
    if (inPlace) {
      log.info({ file: file.name, path: inPlace.path }, 'already in place with the published content: not downloaded');
      Object.assign(fileProgress, { bytes: inPlace.bytes, bytesDone: inPlace.bytes, sha256: inPlace.sha256, state: 'in-place' });
      before += inPlace.bytes;
      files.push({ name: file.name, bytes: inPlace.bytes, sha256: inPlace.sha256, publishedPath: inPlace.path });
      continue;
    }
    const tempPath = partPath(config.modelsRoot, id, file.name);
    log.info({ file: file.name, bytes: file.bytes, sha256: expectedSha256 }, 'downloading');
    fileProgress.state = 'downloading';
    const result = await fetchFile(
      {
        modelId: id,
        source: data.spec.source,
        name: file.name,
        ...(file.bytes !== undefined ? { bytes: file.bytes } : {}),
        ...(expectedSha256 ? { sha256: expectedSha256.toLowerCase() } : {}),
        request: file.request,
        partPath: tempPath,
      },
      {
        leases: fleet.leases,
        mirror,
        counters: fleet.counters,
        log,
        engine: { connections: config.download.connections, stallTimeoutMs: config.download.stallTimeoutMs },
        ...(abort ? { signal: abort } : {}),
        onProgress: (p) => {
          if (p.kind === 'waiting') {
            f.waiting(p.holder);
            return;
          }
          fileProgress.bytesDone = p.bytesDone;
          const bytesDone = before + p.bytesDone;
          const remaining = total !== undefined ? total - bytesDone : undefined;
          turn?.report(bytesDone, total);
          void report(job, {
            phase: 'downloading',
            name: file.name,
            from: p.from,
            bytesDone,
            ...(total !== undefined ? { bytes: total } : {}),
            bytesPerSecond: Math.round(p.bytesPerSecond),
            ...(remaining !== undefined && p.bytesPerSecond > 0 ? { etaSeconds: Math.round(remaining / p.bytesPerSecond) } : {}),
            files: progressFiles,
          });
        },
      },
    );
    before += result.bytes;
    Object.assign(fileProgress, { bytes: result.bytes, bytesDone: result.bytes, sha256: result.sha256, state: 'verifying' });
    files.push({
      name: file.name,
      bytes: result.bytes,
      sha256: result.sha256,
      tempPath,
      ...(file.bytes !== undefined ? { expectedBytes: file.bytes } : {}),
      ...(expectedSha256 ? { expectedSha256 } : {}),
      ...(file.category ? { sourceCategory: file.category } : {}),
    });
  }
  await report(job, { phase: 'verifying', bytesDone: before, bytes: before, bytesPerSecond: 0, files: progressFiles });
  log.info({ files: files.map((x) => x.name), bytes: before }, 'downloaded and hashed');
  return files;
}

/** What a pod shows while another fetches its model: that pod, and its progress. */
function waitingFor(holder: LeaseHolder, total: number | undefined): DownloadProgress {
  return {
    phase: 'waiting',
    waitingFor: holder.pod,
    bytesDone: holder.bytesDone,
    ...(holder.bytes !== null ? { bytes: holder.bytes } : total !== undefined ? { bytes: total } : {}),
    bytesPerSecond: 0,
  };
}

/** The model's files as the record beside the models has them verified in place, or undefined. */
async function alreadyVerified(
  job: Job<unknown>,
  id: string,
  pin: string | undefined,
  deps: WorkerDeps,
  log: Logger,
): Promise<DownloadResult | undefined> {
  const verified = await deps.record.validEntries(id, pin);
  if (!verified) return undefined;
  const bytes = verified.reduce((n, e) => n + e.bytes, 0);
  await report(job, { phase: 'done', bytesDone: bytes, bytes, bytesPerSecond: 0 });
  log.info({ files: verified.map((e) => e.path) }, 'already verified on disk: nothing to download');
  return {
    files: verified.map((e) => ({
      name: path.basename(e.path),
      bytes: e.bytes,
      sha256: e.sha256,
      publishedPath: deps.record.absolute(e),
    })),
  };
}

/** A download that failed for good leaves nothing behind in the temp area. */
async function discardTempFiles(modelsRoot: string, id: string): Promise<void> {
  const dir = tempDir(modelsRoot);
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(`${id}--`)).map((n) => rm(path.join(dir, n), { force: true })));
}

async function report(job: Job, progress: DownloadProgress): Promise<void> {
  await job.updateProgress({ ...progress }).catch(() => undefined);
}

