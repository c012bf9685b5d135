import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UserError } from '../../src/lib/errors.js';
import * as hash from '../../src/lib/hash.js';
import { publishFile } from '../../src/organize/publish.js';
import { VerifiedRecord } from '../../src/organize/record.js';
import { downloaded, sha256Of } from './helpers.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'phoenix-record-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(root, { recursive: true, force: true });
});

async function publishSample(modelId = 'm1', name = 'a.safetensors', data = 'weights'): Promise<string> {
  return publishFile({
    modelId,
    file: await downloaded(root, modelId, name, data),
    category: 'checkpoints',
    modelsRoot: root,
    overwrite: false,
    record: new VerifiedRecord(root),
  });
}

describe('VerifiedRecord across a warm restart', () => {
  it('trusts a verified file that is unchanged, without re-hashing it', async () => {
    const target = await publishSample();
    const spy = vi.spyOn(hash, 'sha256File');
    const entries = await new VerifiedRecord(root).validEntries('m1');
    expect(entries).toEqual([expect.objectContaining({ path: 'checkpoints/a.safetensors', sha256: sha256Of('weights'), bytes: 7 })]);
    expect(new VerifiedRecord(root).absolute(entries![0]!)).toBe(target);
    expect(spy).not.toHaveBeenCalled();
  });

  it('lets publishFile accept a file handed over as already in place', async () => {
    const target = await publishSample();
    const file = { name: 'a.safetensors', bytes: 7, sha256: sha256Of('weights'), publishedPath: target };
    const again = await publishFile({ modelId: 'm1', file, category: 'checkpoints', modelsRoot: root, overwrite: false, record: new VerifiedRecord(root) });
    expect(again).toBe(target);
  });

  it('asks again for a file that vanished', async () => {
    const target = await publishSample();
    await rm(target);
    expect(await new VerifiedRecord(root).validEntries('m1')).toBeUndefined();
    expect(await new VerifiedRecord(root).validEntryAt(target)).toBeUndefined();
  });

  it('asks again for a file that changed, even at the same size', async () => {
    const target = await publishSample();
    await writeFile(target, 'WEIGHTS');
    await utimes(target, new Date(), new Date(Date.now() + 5000));
    expect(await new VerifiedRecord(root).validEntries('m1')).toBeUndefined();
    const file = { name: 'a.safetensors', bytes: 7, sha256: sha256Of('weights'), publishedPath: target };
    const err = await publishFile({ modelId: 'm1', file, category: 'checkpoints', modelsRoot: root, overwrite: false, record: new VerifiedRecord(root) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
  });

  it('asks again for every file of a model when one of them is gone', async () => {
    await publishSample('m1', 'a.safetensors', 'one');
    const second = await publishSample('m1', 'b.safetensors', 'two');
    expect(await new VerifiedRecord(root).validEntries('m1')).toHaveLength(2);
    await rm(second);
    expect(await new VerifiedRecord(root).validEntries('m1')).toBeUndefined();
  });

  it('knows nothing of a model never verified', async () => {
    await publishSample();
    expect(await new VerifiedRecord(root).validEntries('other')).toBeUndefined();
  });

  it('keeps every entry when many publishes through separate instances finish at once', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => publishSample(`m${i}`, `f${i}.safetensors`, `data ${i}`)));
    const record = new VerifiedRecord(root);
    for (let i = 0; i < 20; i++) expect(await record.validEntries(`m${i}`)).toHaveLength(1);
  });

  it('starts afresh from a corrupt record instead of failing', async () => {
    await writeFile(path.join(root, '.phoenix-verified.json'), '{not json');
    expect(await new VerifiedRecord(root).validEntries('m1')).toBeUndefined();
    await publishSample();
    expect(await new VerifiedRecord(root).validEntries('m1')).toHaveLength(1);
  });
});
