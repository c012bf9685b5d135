import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { access, rename, rm, stat, writeFile } from 'node:fs/promises';

/** Whether anything (file, folder, link target) is at `file`. */
export function pathExists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/**
 * fs.stat, or undefined when nothing is there (ENOENT, or ENOTDIR for a path through a file). Any
 * other failure, such as EACCES or EIO, is thrown: "cannot look" is not "absent".
 */
export async function statIfExists(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** Whether an fs error means the path does not exist. */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Writes a temp file beside `file` and renames it over, so a reader sees the old or the new text,
 * never half. `mode` applies from the first byte (a secret is never readable by others, even briefly).
 */
export async function writeFileAtomically(file: string, text: string | Buffer, options: { mode?: number } = {}): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, options.mode === undefined ? {} : { mode: options.mode });
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}
