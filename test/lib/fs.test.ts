import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileOnce, statIfExists } from '../../src/lib/fs.js';
import { REPO_ROOT, failure } from '../helpers.js';
import { runUnprivileged } from '../fixtures/unprivileged.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-fs-'));
  await chmod(dir, 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('statIfExists', () => {
  it('gives the stats of a file that is there', async () => {
    await writeFile(path.join(dir, 'f'), 'abc');
    expect((await statIfExists(path.join(dir, 'f')))?.size).toBe(3);
  });

  it('gives undefined only when nothing is there', async () => {
    await writeFile(path.join(dir, 'file'), 'x');
    expect(await statIfExists(path.join(dir, 'missing'))).toBeUndefined();
    expect(await statIfExists(path.join(dir, 'file', 'below-a-file'))).toBeUndefined();
  });

  it('throws when the path cannot be looked at, such as a symlink loop', async () => {
    await symlink(path.join(dir, 'b'), path.join(dir, 'a'));
    await symlink(path.join(dir, 'a'), path.join(dir, 'b'));
    expect((await failure(statIfExists(path.join(dir, 'a')))) as NodeJS.ErrnoException).toMatchObject({ code: 'ELOOP' });
  });

  it('throws EACCES for a file in a folder the process may not enter, instead of calling it absent', async () => {
    const locked = path.join(dir, 'locked');
    await mkdir(locked);
    await writeFile(path.join(locked, 'model.safetensors'), 'weights');
    await chmod(locked, 0o700);
    const r = await runUnprivileged(`
      import { statIfExists } from '${REPO_ROOT}/src/lib/fs.ts';
      try { console.log('stat', JSON.stringify(await statIfExists('${locked}/model.safetensors'))); }
      catch (err) { console.log('error', err.code); }
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('error EACCES');
  });
});

describe('createFileOnce', () => {
  it('lets one of many concurrent creators win, and never replaces what is there', async () => {
    const file = path.join(dir, 'key');
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((data) => createFileOnce(file, data, { mode: 0o600 })));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = ['a', 'b', 'c', 'd'][results.indexOf(true)];
    expect(await readFile(file, 'utf8')).toBe(winner);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await createFileOnce(file, 'later')).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(winner);
    expect(await readdir(dir)).toEqual(['key']);
  });
});
