import { rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/index.js';
import { tempDir } from '../download/paths.js';
import { pathExists } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import type { RunAs } from '../lib/run-as.js';
import { ADDITIONS_FILE } from '../producer/additions.js';

/** Files that remember what a pod fetched, from where, and what was typed into it. */
const HOME_TRACES = ['.cache/pip', '.cache/huggingface', '.bash_history', '.python_history', '.wget-hsts', '.lesshst'];

/** Phoenix's own state: the Redis data (queues, job logs, URLs), the models added at runtime, and FileBrowser's database. */
const STATE_TRACES = ['appendonlydir', 'appendonly.aof', 'dump.rdb', ADDITIONS_FILE, 'filebrowser.db'];

/**
 * What `phoenix cleanup` removes: always the partial downloads; with PARANOID_MODE also Phoenix's
 * queue state and the caches and shell histories in $HOME. Verified models and their record stay,
 * so the next start re-uses them without downloading.
 */
export function cleanupTargets(config: Config, options: { includeState: boolean }): string[] {
  const targets = [tempDir(config.modelsRoot)];
  if (!config.paranoid) return targets;
  if (options.includeState) targets.push(...STATE_TRACES.map((t) => path.join(config.stateDir, t)));
  if (config.home) targets.push(...HOME_TRACES.map((t) => path.join(config.home!, t)));
  return targets;
}

/**
 * Removes the cleanup targets. `includeState` only once Redis has stopped (it owns its data files).
 * With `runAs` (COMFYUI_USER), PARANOID_MODE also removes the same caches and histories from that
 * user's home, as that user: where pip and the nodes' own downloads leave them.
 */
export async function cleanup(config: Config, log: Logger, options: { includeState: boolean; runAs?: RunAs }): Promise<string[]> {
  const removed: string[] = [];
  for (const target of cleanupTargets(config, options)) {
    if (!(await pathExists(target))) continue;
    await rm(target, { recursive: true, force: true });
    removed.push(target);
  }
  const home = options.runAs?.uid !== undefined ? options.runAs.env({}).HOME : undefined;
  if (config.paranoid && home && options.runAs) {
    const traces = HOME_TRACES.map((t) => path.join(home, t));
    const command = await options.runAs.command('rm', ['-rf', '--', ...traces], config.comfyui.env);
    const r = await execa(command.file, command.args, { env: options.runAs.env(config.comfyui.env), extendEnv: false, reject: false, stdin: 'ignore', timeout: 5000 });
    if (r.exitCode === 0) removed.push(`${home}: ${HOME_TRACES.join(', ')}`);
    else log.warn({ err: String(r.stderr).trim() }, `cannot clean ${home}`);
  }
  log.info({ removed, paranoid: config.paranoid }, 'cleanup done');
  return removed;
}
