import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { tempDir } from '../download/paths.js';
import { pathExists } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
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
 */
export async function cleanup(config: Config, log: Logger, options: { includeState: boolean }): Promise<string[]> {
  const removed: string[] = [];
  for (const target of cleanupTargets(config, options)) {
    if (!(await pathExists(target))) continue;
    await rm(target, { recursive: true, force: true });
    removed.push(target);
  }
  log.info({ removed, paranoid: config.paranoid }, 'cleanup done');
  return removed;
}
