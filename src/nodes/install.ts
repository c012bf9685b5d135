import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { NodeSpec } from '../config/nodes.js';
import { UserError } from '../lib/errors.js';

export interface InstallNodeOptions {
  node: NodeSpec;
  comfyuiDir: string;
  python: string;
  signal?: AbortSignal;
  /** Receives each line git, pip and install.py print (kept in the job's log). */
  onOutput?: (line: string) => void;
}

export interface InstalledNode {
  path: string;
  commit: string;
}

/**
 * Clones (or updates) a custom node at its ref into custom_nodes/<name>, installs its
 * requirements.txt with ComfyUI's Python and runs install.py. Every command gets an argument
 * array; URLs are validated by NodeSpec (http(s) only, never starting with "-").
 */
export async function installNode(options: InstallNodeOptions): Promise<InstalledNode> {
  const { node } = options;
  const dir = path.join(options.comfyuiDir, 'custom_nodes', node.name);
  await mkdir(path.dirname(dir), { recursive: true });
  const run = (file: string, args: string[], cwd: string) => runLogged(file, args, cwd, options);

  if (await exists(path.join(dir, '.git'))) {
    await run('git', ['remote', 'set-url', 'origin', '--', node.url], dir);
    await run('git', ['fetch', '--tags', '--force', 'origin'], dir);
  } else {
    await run('git', ['clone', '--', node.url, dir], path.dirname(dir));
  }
  if (node.ref) {
    await run('git', ['checkout', '--force', '--detach', `${await resolveRef(dir, node.ref)}`], dir);
  } else if (await exists(path.join(dir, '.git', 'FETCH_HEAD'))) {
    await run('git', ['checkout', '--force', '--detach', 'origin/HEAD'], dir);
  }
  const commit = (await execa('git', ['rev-parse', 'HEAD'], { cwd: dir })).stdout.trim();

  if (await exists(path.join(dir, 'requirements.txt'))) {
    await run(options.python, ['-m', 'pip', 'install', '--no-input', '-r', 'requirements.txt'], dir);
  }
  if (await exists(path.join(dir, 'install.py'))) {
    await run(options.python, ['install.py'], dir);
  }
  return { path: dir, commit };
}

/** A tag or branch as the remote has it, else the ref as given (a commit). */
async function resolveRef(dir: string, ref: string): Promise<string> {
  for (const candidate of [`refs/tags/${ref}`, `refs/remotes/origin/${ref}`, ref]) {
    const r = await execa('git', ['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`], { cwd: dir, reject: false });
    if (r.exitCode === 0) return r.stdout.trim();
  }
  throw new UserError(`ref "${ref}" is not a tag, branch or commit of ${dir}`);
}

async function runLogged(file: string, args: string[], cwd: string, options: InstallNodeOptions): Promise<void> {
  const result = await execa(file, args, {
    cwd,
    all: true,
    reject: false,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    env: { GIT_TERMINAL_PROMPT: '0', PIP_DISABLE_PIP_VERSION_CHECK: '1' },
  });
  for (const line of (result.all ?? '').split('\n')) if (line.trim()) options.onOutput?.(line);
  if (result.exitCode !== 0) {
    const tail = (result.all ?? '').trim().split('\n').slice(-5).join(' | ');
    throw new UserError(`${path.basename(file)} ${args[0]} failed (exit ${result.exitCode ?? result.signal}): ${tail}`);
  }
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
