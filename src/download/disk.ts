import { rm, statfs } from 'node:fs/promises';
import { UserError } from '../lib/errors.js';
import { statePath } from './state.js';

/** Refuses a download that cannot fit, before a byte is fetched. */
export async function ensureFreeSpace(folder: string, neededBytes: number, what: string): Promise<void> {
  if (neededBytes <= 0) return;
  const stats = await statfs(folder);
  const freeBytes = stats.bavail * stats.bsize;
  if (neededBytes > freeBytes) {
    throw new UserError(
      `not enough disk space for ${what}: needs ${formatBytes(neededBytes)} more, ` +
        `only ${formatBytes(freeBytes)} free in ${folder}. Free some space or use a bigger volume.`,
    );
  }
}

/**
 * Removes a download's temp data (part file and resume sidecar). The worker calls it when a
 * download fails for good, i.e. on its final attempt; earlier attempts keep the data to resume.
 */
export async function discardPartial(partPath: string): Promise<void> {
  await Promise.all(
    [partPath, statePath(partPath), `${statePath(partPath)}.tmp`].map((file) => rm(file, { force: true })),
  );
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(bytes / 1e6).toFixed(1)} MB`;
}
