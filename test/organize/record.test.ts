import { chmod, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UserError } from '../../src/lib/errors.js';
import * as hash from '../../src/lib/hash.js';
import { publishFile } from '../../src/organize/publish.js';
import { RECORD_FILE, VerifiedRecord } from '../../src/organize/record.js';
import { runUnprivileged } from '../fixtures/unprivileged.js';
import { REPO_ROOT } from '../helpers.js';
import { downloaded, keyFile, sha256Of } from './helpers.js';

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
    record: new VerifiedRecord(root, keyFile(root)),
  });
}

describe('VerifiedRecord across a warm restart', () => {
  it('trusts a verified file that is unchanged, without re-hashing it', async () => {
    const target = await publishSample();
    const spy = vi.spyOn(hash, 'sha256File');
    const entries = await new VerifiedRecord(root, keyFile(root)).validEntries('m1');
    expect(entries).toEqual([expect.objectContaining({ path: 'checkpoints/a.safetensors', sha256: sha256Of('weights'), bytes: 7 })]);
    expect(new VerifiedRecord(root, keyFile(root)).absolute(entries![0]!)).toBe(target);
    expect(spy).not.toHaveBeenCalled();
  });

  it('lets publishFile accept a file handed over as already in place', async () => {
    const target = await publishSample();
    const file = { name: 'a.safetensors', bytes: 7, sha256: sha256Of('weights'), publishedPath: target };
    const again = await publishFile({ modelId: 'm1', file, category: 'checkpoints', modelsRoot: root, overwrite: false, record: new VerifiedRecord(root, keyFile(root)) });
    expect(again).toBe(target);
  });

  it('asks again for a file that vanished', async () => {
    const target = await publishSample();
    await rm(target);
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('m1')).toBeUndefined();
    expect(await new VerifiedRecord(root, keyFile(root)).validEntryAt(target)).toBeUndefined();
  });

  it('asks again for a file that changed, even at the same size', async () => {
    const target = await publishSample();
    await writeFile(target, 'WEIGHTS');
    await utimes(target, new Date(), new Date(Date.now() + 5000));
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('m1')).toBeUndefined();
    const file = { name: 'a.safetensors', bytes: 7, sha256: sha256Of('weights'), publishedPath: target };
    const err = await publishFile({ modelId: 'm1', file, category: 'checkpoints', modelsRoot: root, overwrite: false, record: new VerifiedRecord(root, keyFile(root)) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
  });

  it('asks again for every file of a model when one of them is gone', async () => {
    await publishSample('m1', 'a.safetensors', 'one');
    const second = await publishSample('m1', 'b.safetensors', 'two');
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('m1')).toHaveLength(2);
    await rm(second);
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('m1')).toBeUndefined();
  });

  it('knows nothing of a model never verified', async () => {
    await publishSample();
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('other')).toBeUndefined();
  });

  it('keeps every entry when many publishes through separate instances finish at once', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => publishSample(`m${i}`, `f${i}.safetensors`, `data ${i}`)));
    const record = new VerifiedRecord(root, keyFile(root));
    for (let i = 0; i < 20; i++) expect(await record.validEntries(`m${i}`)).toHaveLength(1);
  });

  it('keeps a damaged record aside with a warning naming it, and starts a new one', async () => {
    await publishSample('m0', 'kept.safetensors', 'kept');
    const recordPath = path.join(root, RECORD_FILE);
    const whole = await readFile(recordPath, 'utf8');
    await writeFile(recordPath, whole.slice(0, 40));
    const warnings: { keptAs?: string; msg?: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as { keptAs?: string }) });

    expect(await new VerifiedRecord(root, keyFile(root), log).validEntries('m0')).toBeUndefined();
    expect(warnings).toHaveLength(1);
    const keptAs = warnings[0]!.keptAs!;
    expect(path.dirname(keptAs)).toBe(root);
    expect(path.basename(keptAs)).toMatch(/^\.phoenix-verified\.json\.damaged-/);
    expect(await readFile(keptAs, 'utf8')).toBe(whole.slice(0, 40));
    await publishSample();
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('m1')).toHaveLength(1);
    // The damaged text is still there for a look, untouched by the new record.
    expect(await readFile(keptAs, 'utf8')).toBe(whole.slice(0, 40));
  });

  it('sets aside a record of another version or shape rather than trusting it', async () => {
    await writeFile(path.join(root, RECORD_FILE), JSON.stringify({ version: 7, files: { 'checkpoints/a.safetensors': { path: 1 } } }));
    expect(await new VerifiedRecord(root, keyFile(root)).validEntries('m1')).toBeUndefined();
    expect((await readdir(root)).filter((n) => n.includes('.damaged-'))).toHaveLength(1);
  });

  it('fails loudly on a record it may not read, instead of starting over without its entries', async () => {
    await publishSample();
    await chmod(root, 0o755);
    await chmod(path.join(root, RECORD_FILE), 0o600);
    const r = await runUnprivileged(`
      import { VerifiedRecord } from '${REPO_ROOT}/src/organize/record.ts';
      try { console.log('entries', JSON.stringify(await new VerifiedRecord('${root}', '${keyFile(root)}').validEntries('m1'))); }
      catch (err) { console.log('error', err.message); }
    `);
    expect(r.stdout.trim()).toMatch(/^error cannot read the verified-files record .*\.phoenix-verified\.json: EACCES/);
    expect((await readdir(root)).filter((n) => n.includes('.damaged-'))).toEqual([]);
  });
});
