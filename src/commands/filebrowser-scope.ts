import path from 'node:path';
import bcrypt from 'bcryptjs';
import type { Config } from '../config/index.js';

/** One of FileBrowser's access rules: a regular expression over paths relative to its root; the last that matches decides. */
export interface FileBrowserRule {
  regex: true;
  allow: boolean;
  path: '';
  regexp: { raw: string };
}

/** What FileBrowser's user may manage: the models, and ComfyUI's input, output and workflows. */
export function managedFolders(config: Config): string[] {
  return [
    config.modelsRoot,
    path.join(config.comfyui.dir, 'input'),
    path.join(config.comfyui.dir, 'output'),
    path.join(config.comfyui.dir, 'user', 'default', 'workflows'),
  ];
}

/** FileBrowser's root: the deepest folder holding every managed folder (usually $WORKSPACE). */
export function fileBrowserRoot(folders: readonly string[]): string {
  const split = folders.map((f) => path.resolve(f).split(path.sep));
  const common: string[] = [];
  for (let i = 0; split.every((parts) => i < parts.length - 1 && parts[i] === split[0]![i]); i++) common.push(split[0]![i]!);
  return common.join(path.sep) || path.sep;
}

/**
 * Rules that let FileBrowser's user reach the managed folders and nothing else under the root:
 * everything is denied, then the folders leading to a managed folder are allowed (to list them,
 * not what else they hold), then each managed folder's tree; last, anything with a dot-named part
 * (Phoenix's state, the verified-files record, partial downloads, a node's .git) is denied.
 */
export function fileBrowserRules(root: string, folders: readonly string[]): FileBrowserRule[] {
  const rule = (allow: boolean, raw: string): FileBrowserRule => ({ regex: true, allow, path: '', regexp: { raw } });
  const relative = folders.map((f) => path.relative(root, f).split(path.sep).filter(Boolean));
  const leading = new Set(relative.flatMap((parts) => parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'))));
  return [
    rule(false, '^/.+'),
    ...[...leading].sort().map((dir) => rule(true, `^/${escapeRegex(dir)}/?$`)),
    ...relative.map((parts) => rule(true, `^/${escapeRegex(parts.join('/'))}(/.*)?$`)),
    rule(false, '/\\.'),
  ];
}

/** The one FileBrowser user, as `filebrowser users import` reads it: the password only as a bcrypt hash. */
export async function fileBrowserUser(config: Config, rules: readonly FileBrowserRule[]): Promise<Record<string, unknown>> {
  return {
    id: 1,
    username: config.filebrowser.username,
    password: await bcrypt.hash(config.filebrowser.password, 10),
    scope: '.',
    locale: 'en',
    // The password comes from FB_PASSWORD at every start.
    lockPassword: true,
    viewMode: 'list',
    singleClick: false,
    // No admin: an admin could widen its own scope and rules, or add users, from the web page.
    perm: { admin: false, execute: false, create: true, rename: true, modify: true, delete: true, share: false, download: true },
    commands: [],
    sorting: { by: 'name', asc: true },
    rules,
    hideDotfiles: true,
    dateFormat: false,
  };
}

/** A literal string as RE2 (Go) reads it. */
function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}
