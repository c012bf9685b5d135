import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import { jobLogger, type Handler, type WorkerDeps } from './context.js';
import type { Config } from '../config/index.js';
import { modelId } from '../config/model-spec.js';
import { fetchFile } from '../fleet/fetch-file.js';
import type { LeaseHolder } from '../fleet/lease.js';
import { volumeId } from '../fleet/volume.js';
import { takeVolumeTurn } from '../fleet/volume-turn.js';
import { partPath, tempDir } from '../download/paths.js';
import type { DownloadedFile } from '../download/types.js';
import { UserError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { DownloadProgress, DownloadResult, JobName, ModelJobData } from '../queue/jobs.js';
import { resolveModel } from '../sources/index.js';

/**
 * download: resolves the model through its source, then downloads each file into the hidden temp
 * area, hashing while streaming. A model already verified on disk is not downloaded again.
 */
export const downloadModel: Handler<typeof JobName.DownloadModel> = async (job, deps): Promise<DownloadResult> => {
  const { config } = deps;
  const data: ModelJobData = job.data;
  const log = jobLogger(deps, job).child({ model: data.label });

  const verified = await alreadyVerified(job, deps, log);
  if (verified) return verified;

  try {
    return await fetchModel(job, deps, log);
  } catch (err) {
    const lastAttempt = err instanceof UserError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (lastAttempt) await discardTempFiles(config.modelsRoot, data.id);
    throw err;
  }
};

async function fetchModel(job: Job<ModelJobData>, deps: WorkerDeps, log: Logger): Promise<DownloadResult> {
  const { config, fleet } = deps;
  const data = job.data;
  await report(job, { phase: 'resolving', bytesDone: 0, bytesPerSecond: 0 });
  const secretHeaders = secretHeadersFor(config, data.id);
  const resolved = await resolveModel(data.spec, { config, log, ...(secretHeaders ? { secretHeaders } : {}) });
  const known = resolved.every((f) => f.bytes !== undefined);
  const total = known ? resolved.reduce((n, f) => n + (f.bytes ?? 0), 0) : undefined;

  // Pods on one network volume: one fetches, the others use what it published.
  const turn = fleet.leases
    ? await takeVolumeTurn({
        leases: fleet.leases,
        volume: await volumeId(config.modelsRoot),
        modelId: data.id,
        isPublished: async () => (await deps.record.validEntries(data.id)) !== undefined,
        onWaiting: (holder) => void report(job, waitingFor(holder, total)),
        log,
      })
    : undefined;
  if (turn === 'published') return (await alreadyVerified(job, deps, log))!;

  const mirror = await fleet.mirror?.get();
  const files: DownloadedFile[] = [];
  let before = 0;
  try {
    for (const file of resolved) {
      const expectedSha256 = (resolved.length === 1 ? data.spec.sha256 : undefined) ?? file.sha256;
      const tempPath = partPath(config.modelsRoot, data.id, file.name);
      log.info({ file: file.name, bytes: file.bytes, sha256: expectedSha256 }, 'downloading');
      const result = await fetchFile(
        {
          modelId: data.id,
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
          ...(turn ? { signal: turn.signal } : {}),
          onProgress: (p) => {
            if (p.kind === 'waiting') {
              void report(job, waitingFor(p.holder, total));
              return;
            }
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
            });
          },
        },
      );
      before += result.bytes;
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
  } catch (err) {
    await turn?.release().catch(() => undefined);
    throw err;
  }
  // Pods waiting on this volume now wait for the organize job to publish.
  await turn?.complete({ bytes: before, mirrored: false }).catch(() => undefined);
  await report(job, { phase: 'verifying', bytesDone: before, bytes: before, bytesPerSecond: 0 });
  log.info({ files: files.map((f) => f.name), bytes: before }, 'downloaded and hashed');
  return { files };
}

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
async function alreadyVerified(job: Job<ModelJobData>, deps: WorkerDeps, log: Logger): Promise<DownloadResult | undefined> {
  const verified = await deps.record.validEntries(job.data.id);
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

/** Header values of a url model come from the configuration in this process, never from Redis. */
function secretHeadersFor(config: Config, id: string): Record<string, string> | undefined {
  for (const m of config.models) {
    if (m.spec.source === 'url' && m.spec.headers && modelId(m.spec) === id) return { ...m.spec.headers };
  }
  return undefined;
}

