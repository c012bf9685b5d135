import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UserError } from '../../src/lib/errors.js';
import * as hash from '../../src/lib/hash.js';
import { publishFile } from '../../src/organize/publish.js';
import { VerifiedRecord } from '../../src/organize/record.js';
import { downloaded, keyFile, sha256Of } from './helpers.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'phoenix-publish-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(root, { recursive: true, force: true });
});

const publish = (file: Awaited<ReturnType<typeof downloaded>>, overwrite = false, modelId = 'm1') =>
  publishFile({ modelId, file, category: 'loras', modelsRoot: root, overwrite, record: new VerifiedRecord(root, keyFile(root)) });

describe('publishFile', () => {
  it('moves a file that passes the gate into its folder and records it', async () => {
    const file = await downloaded(root, 'm1', 'a.safetensors', 'weights');
    const target = await publish(file);
    expect(target).toBe(path.join(root, 'loras', 'a.safetensors'));
    expect(await readFile(target, 'utf8')).toBe('weights');
    await expect(stat(file.tempPath!)).rejects.toThrow();
    expect((await new VerifiedRecord(root, keyFile(root)).validEntryAt(target))?.sha256).toBe(sha256Of('weights'));
  });

  it('never publishes a file whose checksum differs from what the source published', async () => {
    const file = await downloaded(root, 'm1', 'a.safetensors', 'weights', { sha256: sha256Of('other') });
    const err = await publish(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/failed the checksum gate.*sha256/);
    await expect(stat(path.join(root, 'loras', 'a.safetensors'))).rejects.toThrow();
    await expect(stat(file.tempPath!)).rejects.toThrow();
  });

  it('never publishes a file of the wrong size', async () => {
    const file = await downloaded(root, 'm1', 'a.safetensors', 'weights', { bytes: 999 });
    await expect(publish(file)).rejects.toThrow(/size 7 bytes, the source published 999/);
  });

  it('accepts the source\'s checksum in upper case', async () => {
    const file = await downloaded(root, 'm1', 'a.safetensors', 'weights', { sha256: sha256Of('weights').toUpperCase() });
    await expect(publish(file)).resolves.toBe(path.join(root, 'loras', 'a.safetensors'));
  });

  it('does nothing when a file of the same name and content is already there', async () => {
    await mkdir(path.join(root, 'loras'), { recursive: true });
    const existing = path.join(root, 'loras', 'a.safetensors');
    await writeFile(existing, 'weights');
    const before = await stat(existing);
    const file = await downloaded(root, 'm1', 'a.safetensors', 'weights');
    expect(await publish(file)).toBe(existing);
    expect((await stat(existing)).ino).toBe(before.ino);
    await expect(stat(file.tempPath!)).rejects.toThrow();
    expect(await new VerifiedRecord(root, keyFile(root)).validEntryAt(existing)).toBeDefined();
  });

  it('refuses to replace other content under the same name, and says how to resolve it', async () => {
    const existing = path.join(root, 'loras', 'a.safetensors');
    await mkdir(path.dirname(existing), { recursive: true });
    await writeFile(existing, 'mine!!!');
    const file = await downloaded(root, 'm1', 'a.safetensors', 'weights');
    const err = await publish(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/already exists with other content.*"filename".*overwrite = true/);
    expect(await readFile(existing, 'utf8')).toBe('mine!!!');
  });

  it('tells other content of another size apart without hashing it', async () => {
    const existing = path.join(root, 'loras', 'a.safetensors');
    await mkdir(path.dirname(existing), { recursive: true });
    await writeFile(existing, 'a much longer file of the user');
    const spy = vi.spyOn(hash, 'sha256File');
    await expect(publish(await downloaded(root, 'm1', 'a.safetensors', 'weights'))).rejects.toThrow(/other content/);
    expect(spy).not.toHaveBeenCalled();
  });

  it('replaces other content with overwrite', async () => {
    const existing = path.join(root, 'loras', 'a.safetensors');
    await mkdir(path.dirname(existing), { recursive: true });
    await writeFile(existing, 'mine!!!');
    await publish(await downloaded(root, 'm1', 'a.safetensors', 'weights'), true);
    expect(await readFile(existing, 'utf8')).toBe('weights');
    expect((await new VerifiedRecord(root, keyFile(root)).validEntryAt(existing))?.sha256).toBe(sha256Of('weights'));
  });

  it('lets only one of two models racing for the same name publish', async () => {
    const a = await downloaded(root, 'ma', 'same.safetensors', 'content A');
    const b = await downloaded(root, 'mb', 'same.safetensors', 'content B');
    const results = await Promise.allSettled([publish(a, false, 'ma'), publish(b, false, 'mb')]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(await readFile(path.join(root, 'loras', 'same.safetensors'), 'utf8')).toBe('content A');
  });

  it('refuses a name that would leave its folder', async () => {
    const file = await downloaded(root, 'm1', 'x.safetensors', 'weights');
    await expect(publish({ ...file, name: '../../escape.safetensors' })).rejects.toThrow(/outside/);
    expect(await readdir(root)).not.toContain('escape.safetensors');
  });

  it('stops at a target it cannot look at instead of taking it for a free name', async () => {
    const file = await downloaded(root, 'm1', 'loop.safetensors', 'weights');
    await mkdir(path.join(root, 'loras'), { recursive: true });
    // A symlink loop answers stat with ELOOP: something is there, but it cannot be examined.
    await symlink('loop.safetensors', path.join(root, 'loras', 'loop.safetensors'));
    await expect(publish(file)).rejects.toMatchObject({ code: 'ELOOP' });
    expect((await lstat(path.join(root, 'loras', 'loop.safetensors'))).isSymbolicLink()).toBe(true);
  });
});
