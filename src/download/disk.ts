import { rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../lib/errors.js';
import { statePath } from './state.js';

/**
 * The disk cannot hold the download. Not retried (space does not come back by waiting), and the
 * partial data is kept: once space is freed, adding the model again or a restart resumes it.
 */
export class DiskFullError extends UserError {}

/** Refuses a download that cannot fit, before a byte is fetched. */
export async function ensureFreeSpace(folder: string, neededBytes: number, what: string): Promise<void> {
  if (neededBytes <= 0) return;
  const freeBytes = await freeBytesIn(folder);
  if (neededBytes > freeBytes) {
    throw new DiskFullError(
      `not enough disk space for ${what}: needs ${formatBytes(neededBytes)} more, ` +
        `only ${formatBytes(freeBytes)} free in ${folder}. Free some space or use a bigger volume, ` +
        'then add the model again (POST /api/models) or restart Phoenix.',
    );
  }
}

/** Whether a write failed because the file system (or the user's quota) is full. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** The error for a disk that filled up mid-download, naming the folder, the space left and what to do. */
export async function diskFullError(partPath: string, doneBytes: number, total: number | undefined, what: string): Promise<DiskFullError> {
  const folder = path.dirname(partPath);
  const free = await freeBytesIn(folder).catch(() => undefined);
  const of = total !== undefined ? ` of ${formatBytes(total)}` : '';
  return new DiskFullError(
    `disk full while downloading ${what}: ${folder} has ${free !== undefined ? formatBytes(free) : 'no space'} free ` +
      `(ENOSPC). The ${formatBytes(doneBytes)}${of} already downloaded are kept. Free some space or use a bigger ` +
      'volume, then add the model again (POST /api/models) or restart Phoenix: the download resumes where it stopped.',
  );
}

async function freeBytesIn(folder: string): Promise<number> {
  const stats = await statfs(folder);
  return stats.bavail * stats.bsize;
}

/**
 * Removes a download's temp data (part file and resume sidecar): after a checksum mismatch, a
 * download that failed for good, or once the file is published.
 */
export async function discardPartial(partPath: string): Promise<void> {
  await Promise.all(
    [partPath, statePath(partPath), `${statePath(partPath)}.tmp`].map((file) => rm(file, { force: true })),
  );
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  if (gib >= 1) return `${gib.toFixed(2)} GiB`;
  return bytes >= 1e5 ? `${(bytes / 1e6).toFixed(1)} MB` : `${bytes} bytes`;
}
