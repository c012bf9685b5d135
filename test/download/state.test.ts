import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readState, writeState, type PartState } from '../../src/download/state.js';

const state: PartState = { version: 1, urlId: 'u', total: 10, validator: {}, done: [[0, 4]], hashedBytes: 4 };

describe('writeState', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-state-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('replaces the sidecar whole', async () => {
    const part = path.join(dir, 'm.part');
    await writeState(part, state);
    await writeState(part, { ...state, done: [[0, 10]] });
    expect(await readState(part)).toEqual({ ...state, done: [[0, 10]] });
  });

  it('leaves no temp file behind when the write fails (as on a full disk)', async () => {
    const part = path.join(dir, 'm.part');
    // The sidecar's place is taken by a folder that is not empty: the rename over it fails.
    await mkdir(path.join(`${part}.state`, 'in-the-way'), { recursive: true });
    await expect(writeState(part, state)).rejects.toThrow();
    expect(existsSync(`${part}.state.tmp`)).toBe(false);
  });
});
