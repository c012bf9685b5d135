import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { MODEL_FOLDERS } from '../config/folders.js';
import { writeFileAtomically } from '../lib/fs.js';

/** The first line of every file Phoenix writes; a file without it belongs to the user. */
export const PHOENIX_MARKER = '# Written by Phoenix; rewritten at every start. Put your own sections in another file.';

/** ComfyUI loads this one by itself, from beside main.py. */
export const DEFAULT_FILE = 'extra_model_paths.yaml';
/** Used when the user has a file of their own; passed with --extra-model-paths-config. */
export const PHOENIX_FILE = 'extra_model_paths.phoenix.yaml';

/** Older folders ComfyUI still reads, listed after the current name. */
const LEGACY_FOLDERS: Readonly<Partial<Record<string, string>>> = {
  text_encoders: 'clip',
  diffusion_models: 'unet',
};

type ExtraPathsConfig = Pick<Config, 'persistentStorage'> & { comfyui: Pick<Config['comfyui'], 'dir'> };

/**
 * Points ComfyUI at the models on persistent storage. Writes `extra_model_paths.yaml` beside
 * main.py with one `phoenix:` section (base_path = the storage, is_default so ComfyUI saves there
 * too), or `extra_model_paths.phoenix.yaml` when the user keeps their own `extra_model_paths.yaml`,
 * which is never touched. Returns the path written, or undefined without persistent storage (and
 * then removes any file an earlier start with persistence left behind).
 */
export async function writeExtraModelPaths(config: ExtraPathsConfig): Promise<string | undefined> {
  const dir = config.comfyui.dir;
  const defaultFile = path.join(dir, DEFAULT_FILE);
  const phoenixFile = path.join(dir, PHOENIX_FILE);
  const defaultIsOurs = await writtenByPhoenix(defaultFile);

  if (!config.persistentStorage) {
    if (defaultIsOurs === true) await rm(defaultFile, { force: true });
    await rm(phoenixFile, { force: true });
    return undefined;
  }
  const target = defaultIsOurs === false ? phoenixFile : defaultFile;
  await mkdir(dir, { recursive: true });
  await writeFileAtomically(target, renderExtraModelPaths(config.persistentStorage));
  if (target === defaultFile) await rm(phoenixFile, { force: true });
  return target;
}

/** The ComfyUI arguments that load a file written by writeExtraModelPaths (none for the default file). */
export function extraModelPathsArgs(written: string | undefined): string[] {
  return written && path.basename(written) !== DEFAULT_FILE ? ['--extra-model-paths-config', written] : [];
}

/** The YAML for one `phoenix:` section, in the shape of ComfyUI's extra_model_paths.yaml.example. */
export function renderExtraModelPaths(storage: string): string {
  const lines = [
    PHOENIX_MARKER,
    'phoenix:',
    `  base_path: ${JSON.stringify(storage)}`,
    '  is_default: true',
  ];
  for (const folder of MODEL_FOLDERS) {
    const legacy = LEGACY_FOLDERS[folder];
    if (legacy) lines.push(`  ${folder}: |`, `    models/${folder}`, `    models/${legacy}`);
    else lines.push(`  ${folder}: models/${folder}`);
  }
  return `${lines.join('\n')}\n`;
}

/** true: Phoenix wrote it; false: the user's own; undefined: no such file. */
async function writtenByPhoenix(file: string): Promise<boolean | undefined> {
  try {
    return (await readFile(file, 'utf8')).startsWith(PHOENIX_MARKER);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
