import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findInPlace } from '../../src/organize/in-place.js';
import { publishFile } from '../../src/organize/publish.js';
import { RECORD_FILE, VerifiedRecord } from '../../src/organize/record.js';
import { RecordKey } from '../../src/organize/record-key.js';
import { downloaded, keyFile, sha256Of } from './helpers.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'phoenix-record-trust-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

const record = () => new VerifiedRecord(root, keyFile(root));
const recordPath = () => path.join(root, RECORD_FILE);
type Entries = Record<string, Record<string, unknown>>;
const readEntries = async (): Promise<Entries> => (JSON.parse(await readFile(recordPath(), 'utf8')) as { files: Entries }).files;
const writeEntries = async (files: Entries) => writeFile(recordPath(), JSON.stringify({ version: 2, files }));

async function publish(modelId: string, name: string, data: string): Promise<string> {
  return publishFile({ modelId, file: await downloaded(root, modelId, name, data), category: 'loras', modelsRoot: root, overwrite: false, record: record() });
}

const inPlace = (modelId: string, name: string, bytes: number, sha256: string | undefined) =>
  findInPlace({ modelsRoot: root, record: record(), modelId, name, category: 'loras', bytes, sha256 });

describe('the verified-files record is authenticated', () => {
  it('ignores an entry edited to describe a planted file, so the planted file is re-hashed and not kept', async () => {
    const good = 'good weights';
    const target = await publish('m1', 'a.safetensors', good);
    // Someone who can write the record but not read the key plants a file of the same size and
    // rewrites the entry to match it, hoping Phoenix keeps it without hashing.
    const planted = 'evil weights';
    await writeFile(target, planted);
    const s = await stat(target);
    const files = await readEntries();
    Object.assign(files['loras/a.safetensors']!, { bytes: s.size, mtimeMs: s.mtimeMs, sha256: sha256Of(planted) });
    await writeEntries(files);

    expect(await record().validEntryAt(target)).toBeUndefined();
    expect(await record().validEntries('m1')).toBeUndefined();
    // The source's hash is the good one: the planted file fails the re-hash, so it is downloaded again.
    expect(await inPlace('m1', 'a.safetensors', good.length, sha256Of(good))).toBeUndefined();
  });

  it('ignores an entry added by hand, even with a matching hash', async () => {
    await publish('m1', 'a.safetensors', 'weights');
    const extra = path.join(root, 'loras', 'b.safetensors');
    await writeFile(extra, 'planted');
    const s = await stat(extra);
    const files = await readEntries();
    files['loras/b.safetensors'] = { ...files['loras/a.safetensors'], modelId: 'm2', path: 'loras/b.safetensors', bytes: s.size, mtimeMs: s.mtimeMs, sha256: sha256Of('planted') };
    await writeEntries(files);
    expect(await record().validEntries('m2')).toBeUndefined();
    expect(await record().validEntryAt(extra)).toBeUndefined();
  });

  it('ignores an entry whose path leaves the models folder, even one signed with the pod key', async () => {
    const outside = path.join(root, '..', `${path.basename(root)}-outside.safetensors`);
    await writeFile(outside, 'outside');
    try {
      const s = await stat(outside);
      const fields = { modelId: 'm9', path: path.relative(root, outside), bytes: s.size, mtimeMs: s.mtimeMs, sha256: sha256Of('outside') };
      const mac = await new RecordKey(keyFile(root)).sign([fields.modelId, fields.path, fields.bytes, fields.mtimeMs, fields.sha256]);
      await writeEntries({ [fields.path]: { ...fields, mac } });
      expect(await record().validEntries('m9')).toBeUndefined();
      expect(await record().validEntryAt(outside)).toBeUndefined();
    } finally {
      await rm(outside, { force: true });
    }
  });

  it('keeps the record and its key readable by Phoenix\'s user alone', async () => {
    await publish('m1', 'a.safetensors', 'weights');
    expect((await stat(recordPath())).mode & 0o777).toBe(0o600);
    expect((await stat(keyFile(root))).mode & 0o777).toBe(0o600);
    expect((await readFile(keyFile(root))).length).toBe(32);
  });
});

describe('the sha256 the configuration pins', () => {
  it('counts an entry only when it has the pinned hash, so adding or changing a pin is checked', async () => {
    const target = await publish('m1', 'a.safetensors', 'weights');
    expect(await record().validEntries('m1', sha256Of('weights'))).toHaveLength(1);
    expect(await record().validEntries('m1', sha256Of('other'))).toBeUndefined();
    expect(await record().validEntryAt(target, sha256Of('other'))).toBeUndefined();
    // The file on disk is re-hashed against the new pin, and does not pass it.
    expect(await inPlace('m1', 'a.safetensors', 7, sha256Of('other'))).toBeUndefined();
    expect(await inPlace('m1', 'a.safetensors', 7, sha256Of('weights'))).toMatchObject({ path: target });
  });
});

describe('a file that changed since it was verified', () => {
  it('is re-hashed: kept when only its mtime moved, downloaded again when its content changed, even when the source publishes no hash', async () => {
    const target = await publish('m1', 'a.safetensors', 'weights');
    const later = new Date(Date.now() + 60_000);
    await utimes(target, later, later);
    expect(await record().validEntryAt(target)).toBeUndefined();
    expect(await inPlace('m1', 'a.safetensors', 7, undefined)).toMatchObject({ path: target, sha256: sha256Of('weights') });
    expect(await record().validEntryAt(target)).toBeDefined();

    await writeFile(target, 'WEIGHTS');
    await utimes(target, later, new Date(Date.now() + 120_000));
    expect(await inPlace('m1', 'a.safetensors', 7, undefined)).toBeUndefined();
  });
});

describe('a record of the older, unauthenticated format', () => {
  it('is set aside and its files re-hashed in place, not downloaded again', async () => {
    const target = await publish('m1', 'a.safetensors', 'weights');
    const s = await stat(target);
    await writeFile(recordPath(), JSON.stringify({
      version: 1,
      files: { 'loras/a.safetensors': { modelId: 'm1', path: 'loras/a.safetensors', bytes: s.size, mtimeMs: s.mtimeMs, sha256: sha256Of('weights') } },
    }));
    expect(await record().validEntries('m1')).toBeUndefined();
    expect((await readdir(root)).filter((n) => n.startsWith(`${RECORD_FILE}.damaged-`))).toHaveLength(1);
    expect(await inPlace('m1', 'a.safetensors', 7, sha256Of('weights'))).toMatchObject({ path: target });
    expect(await record().validEntries('m1')).toHaveLength(1);
  });
});
