import path from 'node:path';

/** The published path of a file, refusing anything that would land outside its folder. */
export function publishedPath(modelsRoot: string, category: string, name: string): string {
  const folder = path.resolve(modelsRoot, category);
  const target = path.resolve(folder, name);
  if (path.dirname(target) !== folder || !folder.startsWith(path.resolve(modelsRoot) + path.sep)) {
    throw new Error(`refusing to write "${name}" outside ${folder}`);
  }
  return target;
}
