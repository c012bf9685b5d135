import path from 'node:path';

/**
 * Temp data lives in a hidden folder beside the model folders: same filesystem (so publishing is
 * an atomic rename) and invisible to ComfyUI, which only lists inside its category folders.
 */
export function tempDir(modelsRoot: string): string {
  return path.join(modelsRoot, '.phoenix-tmp');
}

export function partPath(modelsRoot: string, modelId: string, name: string): string {
  return path.join(tempDir(modelsRoot), `${modelId}--${name}.part`);
}

/** The published path of a file, refusing anything that would land outside its folder. */
export function publishedPath(modelsRoot: string, category: string, name: string): string {
  const folder = path.resolve(modelsRoot, category);
  const target = path.resolve(folder, name);
  if (path.dirname(target) !== folder || !folder.startsWith(path.resolve(modelsRoot) + path.sep)) {
    throw new Error(`refusing to write "${name}" outside ${folder}`);
  }
  return target;
}
