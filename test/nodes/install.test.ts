import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/lib/errors.js';
import { installNode } from '../../src/nodes/install.js';
import { GitHost, type GitRepo } from '../fixtures/git-repos.js';
import { writeFakePython, type FakePython } from './fake-python.js';

let host: GitHost;
let dir: string;
let comfy: string;
let fake: FakePython;

beforeAll(async () => {
  host = await GitHost.start();
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-nodes-'));
  fake = await writeFakePython(path.join(dir, 'bin'));
});
afterAll(async () => {
  await host.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  comfy = await mkdtemp(path.join(dir, 'ComfyUI-'));
});

async function install(name: string, url: string, ref?: string, lines: string[] = []) {
  return installNode({
    node: { name, url, ...(ref ? { ref } : {}) },
    comfyuiDir: comfy,
    python: fake.python,
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    onOutput: (line) => lines.push(line),
  });
}

const read = (node: string, file: string) => readFile(path.join(comfy, 'custom_nodes', node, file), 'utf8');

describe('installNode refs', () => {
  let repo: GitRepo;
  let v1: string;
  let v2: string;
  let devTip: string;
  let mainTip: string;

  beforeAll(async () => {
    repo = await host.createRepo('ComfyUI-Refs', { 'version.txt': 'one' });
    v1 = await repo.tag('v1');
    v2 = await repo.commit({ 'version.txt': 'two' }, 'two');
    await repo.tag('v2');
    await repo.switchBranch('dev');
    devTip = await repo.commit({ 'version.txt': 'dev' }, 'dev work');
    await repo.switchBranch('main');
    mainTip = await repo.commit({ 'version.txt': 'main' }, 'main work');
  });

  it('clones the default branch without a ref', async () => {
    const result = await install('ComfyUI-Refs', repo.url);
    expect(result).toEqual({ path: path.join(comfy, 'custom_nodes', 'ComfyUI-Refs'), commit: mainTip });
    expect(await read('ComfyUI-Refs', 'version.txt')).toBe('main');
  });

  it('checks out a tag', async () => {
    expect((await install('ComfyUI-Refs', repo.url, 'v1')).commit).toBe(v1);
    expect(await read('ComfyUI-Refs', 'version.txt')).toBe('one');
  });

  it('checks out a branch at origin\'s tip', async () => {
    expect((await install('ComfyUI-Refs', repo.url, 'dev')).commit).toBe(devTip);
    expect(await read('ComfyUI-Refs', 'version.txt')).toBe('dev');
  });

  it('checks out a full commit id', async () => {
    expect((await install('ComfyUI-Refs', repo.url, v2)).commit).toBe(v2);
    expect(await read('ComfyUI-Refs', 'version.txt')).toBe('two');
  });

  it('refuses a ref the repository does not have', async () => {
    const err = await install('ComfyUI-Refs', repo.url, 'v9').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/"v9" is not a tag, branch or commit/);
  });
});

describe('installNode on an existing checkout', () => {
  it('fetches and moves to a new ref instead of cloning again, keeping untracked files', async () => {
    const repo = await host.createRepo('ComfyUI-Update', { 'version.txt': 'one' });
    const v1 = await repo.tag('v1');
    await install('ComfyUI-Update', repo.url, 'v1');
    const gitDir = await stat(path.join(comfy, 'custom_nodes', 'ComfyUI-Update', '.git'));
    await writeFile(path.join(comfy, 'custom_nodes', 'ComfyUI-Update', 'settings.json'), '{}');

    const v2 = await repo.commit({ 'version.txt': 'two' }, 'two');
    await repo.tag('v2');
    const lines: string[] = [];
    const result = await install('ComfyUI-Update', repo.url, 'v2', lines);
    expect(result.commit).toBe(v2);
    expect(v2).not.toBe(v1);
    expect(await read('ComfyUI-Update', 'version.txt')).toBe('two');
    expect(await read('ComfyUI-Update', 'settings.json')).toBe('{}');
    expect((await stat(path.join(comfy, 'custom_nodes', 'ComfyUI-Update', '.git'))).ino).toBe(gitDir.ino);
    expect(lines.some((l) => l.startsWith('$ git') && l.includes(' fetch '))).toBe(true);
    expect(lines.some((l) => l.includes(' clone '))).toBe(false);
  });

  it('follows a branch to its new tip on the next install', async () => {
    const repo = await host.createRepo('ComfyUI-Follow', { 'version.txt': 'one' });
    await install('ComfyUI-Follow', repo.url, 'main');
    const tip = await repo.commit({ 'version.txt': 'newer' }, 'newer');
    expect((await install('ComfyUI-Follow', repo.url, 'main')).commit).toBe(tip);
    expect(await read('ComfyUI-Follow', 'version.txt')).toBe('newer');
    const tip2 = await repo.commit({ 'version.txt': 'newest' }, 'newest');
    expect((await install('ComfyUI-Follow', repo.url)).commit).toBe(tip2);
  });

  it('refuses to clone over a folder that is not a checkout', async () => {
    await mkdir(path.join(comfy, 'custom_nodes', 'Handmade'), { recursive: true });
    const repo = await host.createRepo('Handmade');
    await expect(install('Handmade', repo.url)).rejects.toThrow(/exists but is not a git checkout/);
  });
});

describe('installNode failures', () => {
  it('refuses a URL that is not http(s)', async () => {
    await expect(install('x', 'file:///etc')).rejects.toBeInstanceOf(UserError);
  });

  it('reports a repository that does not exist, with git\'s own words', async () => {
    const lines: string[] = [];
    const err = await install('Missing', `${host.baseUrl}/missing.git`, undefined, lines).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/custom node Missing: git clone failed \(exit 128\)/);
    expect(lines.join('\n')).toMatch(/not found|not valid|fatal/i);
  });
});
