import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RECORD_FILE, VerifiedRecord } from '../../src/organize/record.js';
import { REPO_ROOT } from '../helpers.js';
import { keyFile } from './helpers.js';

const TSX = path.join(REPO_ROOT, 'node_modules/.bin/tsx');
const WRITER = path.join(REPO_ROOT, 'test/fixtures/record-writer.ts');

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'phoenix-record-shared-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('a verified-files record on a volume several pods share', () => {
  it('keeps every entry when pods in processes of their own add entries at the same time', { timeout: 60_000 }, async () => {
    const key = keyFile(root);
    // The pods share the record key (fleet/record-key.ts): the first one to start makes it.
    await new VerifiedRecord(root, key).add('seed', await seedFile(), '0'.repeat(64));
    const pods = ['pod-a', 'pod-b', 'pod-c'];
    await Promise.all(pods.map((name) => execa(TSX, [WRITER, root, key, name, '40'], { cwd: REPO_ROOT })));

    const record = new VerifiedRecord(root, key);
    const missing: string[] = [];
    for (const name of pods) for (let i = 0; i < 40; i++) if (!(await record.validEntries(`${name}-${i}`))) missing.push(`${name}-${i}`);
    expect(missing).toEqual([]);
  });

  it('takes over the lock a killed pod left behind, once it is stale', { timeout: 60_000 }, async () => {
    const lock = path.join(root, `${RECORD_FILE}.lock`);
    await mkdir(lock);
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(lock, longAgo, longAgo);
    const record = new VerifiedRecord(root, keyFile(root));
    await record.add('after-crash', await seedFile(), '0'.repeat(64));
    expect(await record.validEntries('after-crash')).toHaveLength(1);
    await expect(stat(lock)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('waits for a live holder instead of writing past it', { timeout: 60_000 }, async () => {
    const lock = path.join(root, `${RECORD_FILE}.lock`);
    await mkdir(lock);
    const record = new VerifiedRecord(root, keyFile(root));
    let written = false;
    const adding = record.add('waiting', await seedFile(), '0'.repeat(64)).then(() => {
      written = true;
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(written).toBe(false);
    await rm(lock, { recursive: true });
    await adding;
    expect(await record.validEntries('waiting')).toHaveLength(1);
  });
});

async function seedFile(): Promise<string> {
  await mkdir(path.join(root, 'loras'), { recursive: true });
  const file = path.join(root, 'loras', 'seed.safetensors');
  await writeFile(file, 'seed');
  return file;
}
