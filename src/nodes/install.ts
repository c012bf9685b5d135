import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { GitNodeSpec } from '../config/nodes.js';
import { UserError } from '../lib/errors.js';
import { pathExists as exists } from '../lib/fs.js';
import { installRequirements } from './requirements.js';
import { hideUserInfo, runStep } from './run.js';

export interface InstallNodeOptions<N = GitNodeSpec> {
  node: N;
  comfyuiDir: string;
  python: string;
  /** ComfyUI's environment, secrets removed (config.comfyui.env): git, pip and install.py get only this. */
  env: Readonly<Record<string, string>>;
  /** Where pip's constraints file is written; defaults to the OS temp dir. */
  constraintsDir?: string;
  signal?: AbortSignal;
  /** Receives each line git, pip and install.py print (kept in the job's log). */
  onOutput?: (line: string) => void;
}

export interface InstalledNode {
  path: string;
  commit: string;
}

/**
 * Git must never wait for a password nobody will type, nor hang on a stalled connection:
 * below 1 KB/s for a minute, it gives up.
 */
const GIT_ENV = { GIT_TERMINAL_PROMPT: '0' };
const GIT_CONFIG = ['-c', 'http.lowSpeedLimit=1000', '-c', 'http.lowSpeedTime=60'];

/**
 * Clones (or updates) a custom node at its ref into custom_nodes/<name>, then, holding the pip
 * lock, installs its requirements.txt with ComfyUI's Python under constraints that keep the torch
 * stack as installed, and runs its install.py.
 *
 * `ref` is a tag, a branch or a commit; a branch (and no ref: the default branch) means origin's
 * tip at the time of the install. An existing checkout is fetched and moved to the ref, never
 * cloned again; local edits to tracked files are discarded, untracked files (a node's own
 * settings, downloaded weights) are kept.
 */
export async function installNode(options: InstallNodeOptions): Promise<InstalledNode> {
  const { node } = options;
  if (!/^https?:\/\//i.test(node.url)) throw new UserError(`custom node ${node.name}: ${node.url} is not an http(s) URL`);
  const dir = path.join(options.comfyuiDir, 'custom_nodes', node.name);
  const step = (label: string, cwd: string) => ({
    cwd,
    label: `custom node ${node.name}: ${label}`,
    onOutput: options.onOutput,
    signal: options.signal,
  });
  const gitEnv = { ...options.env, ...GIT_ENV };
  const git = (args: string[], cwd = dir) =>
    runStep('git', [...GIT_CONFIG, ...args], { ...step(`git ${args[0]}`, cwd), env: gitEnv });

  await mkdir(path.dirname(dir), { recursive: true });
  if (await isCheckout(dir)) {
    await git(['remote', 'set-url', 'origin', node.url]);
    await git(['fetch', '--force', '--prune', '--tags', 'origin']);
    // Follow a change of the default branch; a remote that cannot say keeps the old one.
    await execa('git', ['remote', 'set-head', 'origin', '--auto'], { cwd: dir, reject: false, env: gitEnv, extendEnv: false, stdin: 'ignore' });
  } else if (await exists(dir)) {
    throw new UserError(
      `custom node ${node.name}: ${dir} exists but is not a git checkout; remove it (or rename the node) so it can be cloned`,
    );
  } else {
    await git(['clone', '--', node.url, dir], path.dirname(dir));
  }

  const commit = await resolveRef(dir, node, git);
  await git(['checkout', '--quiet', '--force', '--detach', commit]);
  if (await exists(path.join(dir, '.gitmodules'))) await git(['submodule', 'update', '--init', '--recursive', '--force']);

  await installRequirements(dir, { ...options, label: `custom node ${node.name}` });
  return { path: dir, commit };
}

/**
 * The commit a ref names on the remote: a tag first, then a branch as origin has it, then a commit
 * id. Local branches are never consulted: they are stale copies of origin's.
 */
async function resolveRef(
  dir: string,
  node: GitNodeSpec,
  git: (args: string[]) => Promise<void>,
): Promise<string> {
  const candidates = node.ref
    ? [`refs/tags/${node.ref}`, `refs/remotes/origin/${node.ref}`, ...(/^[0-9a-f]{7,64}$/i.test(node.ref) ? [node.ref] : [])]
    : ['refs/remotes/origin/HEAD'];
  const found = await firstCommit(dir, candidates);
  if (found) return found;
  if (node.ref && /^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(node.ref)) {
    // A commit no branch or tag reaches yet; servers that allow it hand it over by id.
    await git(['fetch', '--force', 'origin', node.ref]).catch(() => undefined);
    const fetched = await firstCommit(dir, [node.ref]);
    if (fetched) return fetched;
  }
  throw new UserError(
    node.ref
      ? `custom node ${node.name}: "${node.ref}" is not a tag, branch or commit of ${hideUserInfo(node.url)}`
      : `custom node ${node.name}: ${hideUserInfo(node.url)} has no default branch; give a ref`,
  );
}

async function firstCommit(dir: string, candidates: readonly string[]): Promise<string | undefined> {
  for (const candidate of candidates) {
    const r = await execa('git', ['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`], { cwd: dir, reject: false, stdin: 'ignore' });
    if (r.exitCode === 0) return r.stdout.trim();
  }
  return undefined;
}

async function isCheckout(dir: string): Promise<boolean> {
  if (!(await exists(path.join(dir, '.git')))) return false;
  const r = await execa('git', ['rev-parse', '--is-inside-work-tree'], { cwd: dir, reject: false, stdin: 'ignore' });
  return r.exitCode === 0 && (await stat(dir)).isDirectory();
}
