import path from 'node:path';
import { pathExists as exists } from '../lib/fs.js';
import { withPinnedPython, type PipContext } from './pip.js';
import { runStep } from './run.js';

export interface RequirementsOptions extends PipContext {
  /** What failure messages call the node ("custom node foo"). */
  label: string;
}

/**
 * What ComfyUI-Manager does after putting a node's files in place, and ComfyUI never does itself:
 * `pip install -r requirements.txt`, then `python install.py`, with cwd the node's folder. Both
 * run holding the pip lock, under constraints that keep ComfyUI's torch stack as installed.
 */
export async function installRequirements(dir: string, options: RequirementsOptions): Promise<void> {
  const hasRequirements = await exists(path.join(dir, 'requirements.txt'));
  const hasInstallScript = await exists(path.join(dir, 'install.py'));
  if (!hasRequirements && !hasInstallScript) return;
  const step = (label: string) => ({ cwd: dir, label: `${options.label}: ${label}`, onOutput: options.onOutput, signal: options.signal });
  await withPinnedPython(options, async (constraints, env) => {
    if (hasRequirements) {
      await runStep(options.python, ['-m', 'pip', 'install', '--no-input', '-r', 'requirements.txt', '-c', constraints], {
        ...step('pip install -r requirements.txt'),
        env,
      });
    }
    if (hasInstallScript) await runStep(options.python, ['install.py'], { ...step('install.py'), env });
  });
}
