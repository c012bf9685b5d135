import { createHash } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { ByteRange } from './ranges.js';

/**
 * What survives a killed process beside the part file: enough to continue where it stopped.
 * The URL is stored as a hash (it may carry a token in its query); the hash state itself cannot
 * be serialised, so `hashedBytes` is informative and the prefix is re-hashed from disk on resume.
 */
export interface PartState {
  version: 1;
  urlId: string;
  total: number;
  validator: { etag?: string; lastModified?: string };
  /** Byte ranges written to the part file. */
  done: ByteRange[];
  hashedBytes: number;
}

export function statePath(partPath: string): string {
  return `${partPath}.state`;
}

export function urlIdentity(url: string): string {
  return createHash('sha256').update(url).digest('hex');
}

/** The sidecar, or undefined when it is missing or unreadable (then the download starts over). */
export async function readState(partPath: string): Promise<PartState | undefined> {
  try {
    const state = JSON.parse(await readFile(statePath(partPath), 'utf8')) as PartState;
    const valid =
      state.version === 1 &&
      typeof state.urlId === 'string' &&
      Number.isSafeInteger(state.total) &&
      Array.isArray(state.done) &&
      state.done.every((r) => Array.isArray(r) && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]));
    return valid ? state : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Written to a temp file and renamed, so a kill leaves either the old or the new state. A write
 * that fails (a full disk) leaves the old state and no temp file behind.
 */
export async function writeState(partPath: string, state: PartState): Promise<void> {
  const temp = `${statePath(partPath)}.tmp`;
  try {
    await writeFile(temp, JSON.stringify(state));
    await rename(temp, statePath(partPath));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
