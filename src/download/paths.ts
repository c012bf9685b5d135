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
