import path from 'node:path';

/**
 * Temp data lives in a hidden folder beside the model folders: same filesystem (so publishing is
 * an atomic rename) and invisible to ComfyUI, which only lists inside its category folders.
 */
export function tempDir(modelsRoot: string): string {
  return path.join(modelsRoot, '.phoenix-tmp');
}

/** The temp file of one file of a model; refuses an id or name that would leave the temp area. */
export function partPath(modelsRoot: string, modelId: string, name: string): string {
  const dir = tempDir(modelsRoot);
  const file = path.join(dir, `${modelId}--${name}.part`);
  if (path.dirname(file) !== dir) throw new Error(`refusing a temp file outside ${dir}: "${modelId}--${name}.part"`);
  return file;
}
