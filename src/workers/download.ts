import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { Config } from '../config/index.js';
import { modelId } from '../config/model-spec.js';
import { DiskFullError } from '../download/disk.js';
import { downloadFile } from '../download/engine.js';
import { partPath, tempDir } from '../download/paths.js';
import type { DownloadedFile } from '../download/types.js';
import { UserError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { findInPlace } from '../organize/in-place.js';
import type { DownloadProgress, DownloadResult, FileProgress, JobName, ModelJobData } from '../queue/jobs.js';
import { resolveModel } from '../sources/index.js';
import { jobLogger, type Handler, type WorkerDeps } from './context.js';

/**
 * download: resolves the model through its source, then downloads each file into the hidden temp
 * area, hashing while streaming. A model already verified on disk is not downloaded again.
 */
export const downloadModel: Handler<typeof JobName.DownloadModel> = async (job, data, deps, signal): Promise<DownloadResult> => {
  const { config } = deps;
  const log = jobLogger(deps, job).child({ model: data.label });

  const verified = await deps.record.validEntries(data.id);
  if (verified) {
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

  try {
    return await fetchModel(job, data, deps, log, signal);
  } catch (err) {
    const lastAttempt = err instanceof UserError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    // Kept for a resume: data a full disk interrupted, and a run cancelled because its job was handed out again.
    const resumable = err instanceof DiskFullError || signal?.aborted === true;
    if (lastAttempt && !resumable) await discardTempFiles(config.modelsRoot, data.id);
    throw err;
  }
};

async function fetchModel(job: Job<unknown>, data: ModelJobData, deps: WorkerDeps, log: Logger, signal: AbortSignal | undefined): Promise<DownloadResult> {
  const { config } = deps;
  await report(job, { phase: 'resolving', bytesDone: 0, bytesPerSecond: 0 });
  const secretHeaders = secretHeadersFor(config, data.id);
  const resolved = await resolveModel(data.spec, { config, log, ...(secretHeaders ? { secretHeaders } : {}), ...(signal ? { signal } : {}) });
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
  const files: DownloadedFile[] = [];
  let before = 0;
  for (const [i, file] of resolved.entries()) {
    const expectedSha256 = expected[i];
    const fileProgress = progressFiles[i]!;
    const inPlace = await findInPlace({
      modelsRoot: config.modelsRoot,
      record: deps.record,
      modelId: data.id,
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
    const tempPath = partPath(config.modelsRoot, data.id, file.name);
    log.info({ file: file.name, bytes: file.bytes, sha256: expectedSha256 }, 'downloading');
    fileProgress.state = 'downloading';
    const result = await downloadFile({
      request: file.request,
      partPath: tempPath,
      ...(file.bytes !== undefined ? { expectedBytes: file.bytes } : {}),
      ...(expectedSha256 ? { expectedSha256 } : {}),
      ...(file.request.singleRequest
        ? { connections: 1, segmentBytes: Number.MAX_SAFE_INTEGER }
        : { connections: config.download.connections }),
      stallTimeoutMs: config.download.stallTimeoutMs,
      ...(signal ? { signal } : {}),
      onProgress: (p) => {
        fileProgress.bytesDone = p.bytesDone;
        const bytesDone = before + p.bytesDone;
        const remaining = total !== undefined ? total - bytesDone : undefined;
        void report(job, {
          phase: 'downloading',
          name: file.name,
          bytesDone,
          ...(total !== undefined ? { bytes: total } : {}),
          bytesPerSecond: Math.round(p.bytesPerSecond),
          ...(remaining !== undefined && p.bytesPerSecond > 0 ? { etaSeconds: Math.round(remaining / p.bytesPerSecond) } : {}),
          files: progressFiles,
        });
      },
    });
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
  log.info({ files: files.map((f) => f.name), bytes: before }, 'downloaded and hashed');
  return { files };
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

/** Header values of a url model come from the configuration in this process, never from Redis. */
function secretHeadersFor(config: Config, id: string): Record<string, string> | undefined {
  for (const m of config.models) {
    if (m.spec.source === 'url' && m.spec.headers && modelId(m.spec) === id) return { ...m.spec.headers };
  }
  return undefined;
}

