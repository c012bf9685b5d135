import { chmod, mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { discardPartial } from '../download/disk.js';
import { partPath } from '../download/paths.js';
import type { DownloadedFile } from '../download/types.js';
import { UserError } from '../lib/errors.js';
import { statIfExists } from '../lib/fs.js';
import { sha256File } from '../lib/hash.js';
import { KeyedMutex } from '../lib/serial.js';
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

/** Publishes to one path run one at a time, so two models cannot both see the name as free. */
const targetLocks = new KeyedMutex();

/**
 * The checksum gate: moves a downloaded file into its ComfyUI folder by atomic rename, only when
 * its size and SHA-256 match what the source (or the manifest) published. Returns the final path.
 *
 * A file already there under the same name is kept when its content is the same (nothing to do);
 * other content is replaced only with `overwrite`, otherwise the publish fails and says how to
 * resolve it. Either way the downloaded data never lands anywhere but its own folder.
 */
export async function publishFile(req: PublishRequest): Promise<string> {
  const { file, record } = req;
  if (file.publishedPath) {
    // Handed over through Redis: only a file in a model folder is ever looked at.
    const inPlace = publishedPath(req.modelsRoot, path.basename(path.dirname(file.publishedPath)), path.basename(file.publishedPath));
    if (inPlace !== path.resolve(file.publishedPath)) throw new UserError(`refusing ${file.publishedPath}: not a file in a model folder`);
    if (await record.validEntryAt(inPlace)) return inPlace;
    throw new UserError(`${inPlace} changed since it was verified; it will be provisioned again on the next start`);
  }
  const target = publishedPath(req.modelsRoot, req.category, file.name);
  return targetLocks.run(target, () => publishTo(target, req));
}

async function publishTo(target: string, req: PublishRequest): Promise<string> {
  const { file, record } = req;
  if (!file.tempPath) throw new Error(`download of ${file.name} handed over no file`);
  // Handed over through Redis: only this model's own temp file is ever moved.
  if (path.resolve(file.tempPath) !== partPath(req.modelsRoot, req.modelId, file.name)) {
    throw new UserError(`refusing ${file.tempPath}: not the temp file of ${file.name}`);
  }
  const onDisk = await statIfExists(file.tempPath);
  if (!onDisk) throw new UserError(`the downloaded data for ${file.name} is gone from ${path.dirname(file.tempPath)}`);

  const problems: string[] = [];
  if (file.expectedBytes !== undefined && onDisk.size !== file.expectedBytes) {
    problems.push(`size ${onDisk.size} bytes, the source published ${file.expectedBytes}`);
  }
  if (onDisk.size !== file.bytes) problems.push(`size ${onDisk.size} bytes, the download counted ${file.bytes}`);
  if (file.expectedSha256 && !sameHash(file.sha256, file.expectedSha256)) {
    problems.push(`sha256 ${file.sha256}, expected ${file.expectedSha256.toLowerCase()}`);
  }
  if (problems.length > 0) {
    await discardPartial(file.tempPath);
    throw new UserError(`${file.name} failed the checksum gate (${problems.join('; ')}): not published, data discarded`);
  }

  const existing = await statIfExists(target);
  if (existing) {
    if (!existing.isFile()) {
      await discardPartial(file.tempPath);
      throw new UserError(`${target} exists and is not a file; remove it or rename the model with "filename"`);
    }
    // A different size is different content: no need to hash gigabytes to say so.
    const existingSha =
      existing.size !== onDisk.size
        ? undefined
        : ((await record.validEntryAt(target))?.sha256 ?? (await sha256File(target)));
    if (existingSha !== undefined && sameHash(existingSha, file.sha256)) {
      await discardPartial(file.tempPath);
      await record.add(req.modelId, target, existingSha);
      return target;
    }
    if (!req.overwrite) {
      await discardPartial(file.tempPath);
      const what = existingSha ? `sha256 ${existingSha}` : `${existing.size} bytes, not ${onDisk.size}`;
      throw new UserError(
        `${target} already exists with other content (${what}); give the model another name with "filename", or set overwrite = true to replace it`,
      );
    }
  }
  // ComfyUI may run as another user, in the models folder's group: it reads the folder and the file.
  if (await mkdir(path.dirname(target), { recursive: true })) await chmod(path.dirname(target), 0o2750);
  await chmod(file.tempPath, 0o640);
  await rename(file.tempPath, target);
  await record.add(req.modelId, target, file.sha256.toLowerCase());
  // The resume sidecar outlived the download (it marks the data complete) until here.
  await discardPartial(file.tempPath);
  return target;
}

function sameHash(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
