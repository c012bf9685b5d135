import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.js';

/** The rooms of src/, lowest first: a file may import its own room or a lower one, never a higher one. */
const LAYERS = [
  ['lib'],
  ['workflows'],
  ['config'],
  ['download', 'nodes', 'comfyui', 'mirror', 'access'],
  ['organize', 'sources', 'fleet'],
  ['queue'],
  ['privacy'],
  ['producer', 'workers'],
  ['board'],
  ['runtime'],
  ['commands'],
  ['cli.ts'],
];
const SRC = path.join(REPO_ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** Every relative import (type imports included) of each file, as paths relative to src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) =>
      path.relative(SRC, path.resolve(path.dirname(file), m[1]!)).replace(/\.js$/, '.ts'),
    );
    graph.set(path.relative(SRC, file), targets);
  }
  return graph;
}

const layerOf = (file: string): number => LAYERS.findIndex((rooms) => rooms.includes(file.split(path.sep)[0]!));

describe('the layout of src/', () => {
  const graph = importGraph();

  it('puts every file in a known room, with cli.ts alone at the root', () => {
    const unplaced = [...graph.keys()].filter((f) => layerOf(f) < 0);
    expect(unplaced).toEqual([]);
  });

  it('has no import from a lower room to a higher one', () => {
    const upward = [...graph].flatMap(([from, targets]) =>
      targets.filter((to) => layerOf(to) > layerOf(from)).map((to) => `${from} -> ${to}`),
    );
    expect(upward).toEqual([]);
  });

  it('has no import circle', () => {
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        circles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(circles).toEqual([]);
  });
});
