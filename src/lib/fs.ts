import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { access, chmod, link, lstat, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

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

/**
 * Creates `file` with `data` unless it exists: written whole under a temporary name, then linked
 * into place. link() fails when the file exists, so of two processes creating it at once, one
 * wins and both read the winner's bytes; nobody ever reads half a file. Returns whether this call
 * created it.
 */
export async function createFileOnce(file: string, data: string | Buffer, options: { mode?: number } = {}): Promise<boolean> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { flag: 'wx', ...(options.mode === undefined ? {} : { mode: options.mode }) });
    await link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Gives a tree's group what its owner has of read and write (and search on folders, execute on
 * files the owner may execute), and makes its folders setgid, so whatever is created there stays
 * in the group. Links are left alone. For files Phoenix writes that another user of the group
 * (ComfyUI's) must use, whatever the process's umask.
 */
export async function shareTreeWithGroup(root: string): Promise<void> {
  const s = await lstat(root);
  if (s.isSymbolicLink()) return;
  if (s.isDirectory()) {
    await chmod(root, (s.mode & 0o7777) | 0o2070);
    for (const entry of await readdir(root)) await shareTreeWithGroup(path.join(root, entry));
    return;
  }
  const execute = s.mode & 0o100 ? 0o010 : 0;
  await chmod(root, (s.mode & 0o7777) | 0o060 | execute);
}
