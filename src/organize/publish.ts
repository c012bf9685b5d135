import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../lib/errors.js';
import { sha256File } from '../lib/hash.js';
import type { DownloadedFile } from '../jobs.js';
import { publishedPath } from './paths.js';
import type { VerifiedRecord } from './record.js';

export interface PublishRequest {
  modelId: string;
  file: DownloadedFile;
  category: string;
  modelsRoot: string;
  /** Replace a file of the same name but other content. */
  overwrite: boolean;
  record: VerifiedRecord;
}

/**
 * The checksum gate: moves a downloaded file into its ComfyUI folder by atomic rename, only when
 * its size and SHA-256 match what the source (or the manifest) published. Returns the final path.
 */
export async function publishFile(req: PublishRequest): Promise<string> {
  const { file, record } = req;
  const target = publishedPath(req.modelsRoot, req.category, file.name);

  if (file.publishedPath) {
    if (await record.validEntryAt(file.publishedPath)) return file.publishedPath;
    throw new UserError(`${file.publishedPath} changed since it was verified; it will be provisioned again on the next start`);
  }
  if (!file.tempPath) throw new Error(`download of ${file.name} handed over no file`);

  const onDisk = await stat(file.tempPath).catch(() => undefined);
  if (!onDisk) throw new UserError(`the downloaded data for ${file.name} is gone from ${path.dirname(file.tempPath)}`);
  const problems: string[] = [];
  if (file.expectedBytes !== undefined && onDisk.size !== file.expectedBytes) {
    problems.push(`size ${onDisk.size} bytes, the source published ${file.expectedBytes}`);
  }
  if (onDisk.size !== file.bytes) problems.push(`size ${onDisk.size} bytes, the download counted ${file.bytes}`);
  if (file.expectedSha256 && file.sha256 !== file.expectedSha256) {
    problems.push(`sha256 ${file.sha256}, expected ${file.expectedSha256}`);
  }
  if (problems.length > 0) {
    await rm(file.tempPath, { force: true });
    throw new UserError(`${file.name} failed the checksum gate (${problems.join('; ')}): not published, data discarded`);
  }

  const existing = await stat(target).catch(() => undefined);
  if (existing) {
    const existingSha = (await record.validEntryAt(target))?.sha256 ?? (await sha256File(target));
    if (existingSha === file.sha256) {
      await rm(file.tempPath, { force: true });
      await record.add(req.modelId, target, existingSha);
      return target;
    }
    if (!req.overwrite) {
      await rm(file.tempPath, { force: true });
      throw new UserError(
        `${target} already exists with other content (sha256 ${existingSha}); rename the model with "filename" or set overwrite = true`,
      );
    }
  }
  await mkdir(path.dirname(target), { recursive: true });
  await rename(file.tempPath, target);
  await record.add(req.modelId, target, file.sha256);
  return target;
}
