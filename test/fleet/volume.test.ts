import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { volumeId } from '../../src/fleet/volume.js';

describe('volumeId', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('gives every pod racing to name a new volume the same id', async () => {
    for (let round = 0; round < 30; round++) {
      const root = await mkdtemp(path.join(os.tmpdir(), 'phoenix-volume-id-'));
      dirs.push(root);
      const modelsRoot = path.join(root, 'models');
      const ids = await Promise.all(Array.from({ length: 16 }, () => volumeId(modelsRoot)));
      expect(new Set(ids).size).toBe(1);
      expect((await readFile(path.join(modelsRoot, '.phoenix-volume-id'), 'utf8')).trim()).toBe(ids[0]);
    }
  });
});
