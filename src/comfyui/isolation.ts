import { chmod, chown, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { MODEL_FOLDERS } from '../config/folders.js';
import type { Config } from '../config/index.js';
import { isMissing } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import { detectRunAs, type RunAs } from '../lib/run-as.js';

/** ComfyUI's folders its user writes: what nodes are cloned into, and its input, output, user and temp. */
export const COMFYUI_WRITABLE = ['custom_nodes', 'input', 'output', 'user', 'temp'] as const;

/**
 * What a custom node can read when it runs as Phoenix's own user: the warning logged at start
 * without isolation, and the list the README's Security section gives.
 */
export function exposureWarning(config: Config): string {
  return (
    `custom nodes run as Phoenix's own user: a node can read every secret in the environment of Phoenix's processes ` +
    `(/proc/<pid>/environ of the workers, the board, Redis and supervisord: tokens, passwords), the Redis socket ` +
    `(${path.join(config.stateDir, 'redis.sock')}), supervisord's socket, ${config.stateDir} (the record key, FileBrowser's database) ` +
    `and the verified-files record; set COMFYUI_USER to an unprivileged user (the image does)`
  );
}

/**
 * Prepares the folders for ComfyUI's own user, whom Phoenix's user shares a group with (the
 * image puts Phoenix's user in that user's group):
 * - ComfyUI's writable folders: group-owned by that user's group, group-writable, setgid (what
 *   ComfyUI and git create there stays in the group, so Phoenix and FileBrowser can read outputs);
 * - the models folder and its model folders: that group may read and list, not write; files in them
 *   readable by the group; new ones inherit the group (setgid);
 * - the folders above them: that group may pass through;
 * - Phoenix's state folder: its own user only.
 * Only folders Phoenix's user owns (or every one, when Phoenix is root) are changed.
 */
export async function prepareComfyFolders(config: Config, runAs: RunAs, log: Logger): Promise<void> {
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await chmod(config.stateDir, 0o700);
  const gid = runAs.gid;
  if (gid === undefined) return;
  const share = (dir: string, mode: number) => shareWithGroup(dir, gid, mode, log);

  await mkdir(config.comfyui.dir, { recursive: true });
  for (const dir of ancestorsWithin(config.workspace, config.comfyui.dir)) await share(dir, 0o010);
  await share(config.comfyui.dir, 0o050);
  for (const name of COMFYUI_WRITABLE) {
    const dir = path.join(config.comfyui.dir, name);
    await mkdir(dir, { recursive: true });
    await share(dir, 0o2070);
  }
  await mkdir(config.modelsRoot, { recursive: true });
  for (const dir of ancestorsWithin(config.workspace, config.modelsRoot)) await share(dir, 0o010);
  await share(config.modelsRoot, 0o2050);
  for (const folder of MODEL_FOLDERS) {
    const dir = path.join(config.modelsRoot, folder);
    if (!(await share(dir, 0o2050))) continue;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isFile()) await share(path.join(dir, entry.name), 0o040);
    }
  }
}

/** The folders from `top` down to the parent of `dir`, when `dir` lies under `top`. */
function ancestorsWithin(top: string, dir: string): string[] {
  const relative = path.relative(top, path.dirname(dir));
  if (relative.startsWith('..') || path.isAbsolute(relative)) return [];
  const parts = relative ? relative.split(path.sep) : [];
  return [top, ...parts.map((_, i) => path.join(top, ...parts.slice(0, i + 1)))];
}

/** Gives `gid` the permission bits `groupBits` (plus setgid when asked) on `file`. False when it does not exist. */
async function shareWithGroup(file: string, gid: number, groupBits: number, log: Logger): Promise<boolean> {
  let s;
  try {
    s = await stat(file);
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
  const me = process.getuid?.() ?? -1;
  if (me !== 0 && s.uid !== me) {
    log.debug({ file, owner: s.uid }, 'not Phoenix\'s: left as it is');
    return true;
  }
  if (s.gid !== gid) await chown(file, s.uid, gid);
  // A setgid bit only means something on a folder.
  const bits = s.isDirectory() ? groupBits : groupBits & 0o777;
  const mode = (s.mode & 0o7777) | bits;
  if (mode !== (s.mode & 0o7777) || s.gid !== gid) await chmod(file, mode);
  return true;
}

/**
 * Decides once how third-party code runs (COMFYUI_USER), prepares its folders, and says so at
 * start: a warning naming what a node could read when it runs as Phoenix's own user.
 */
export async function isolateThirdPartyCode(config: Config, log: Logger): Promise<RunAs> {
  const runAs = await detectRunAs(config.comfyui.user, config.comfyui.env);
  await prepareComfyFolders(config, runAs, log);
  if (runAs.status.mode === 'none') log.warn({ isolation: runAs.status }, exposureWarning(config));
  else log.info({ isolation: runAs.status }, 'third-party code runs as its own user');
  return runAs;
}
