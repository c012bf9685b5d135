import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yazl from 'yazl';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RegistryNodeSpec } from '../../src/config/nodes.js';
import { UserError } from '../../src/lib/errors.js';
import { installRegistryNode } from '../../src/nodes/registry.js';
import { startRegistryFixture, type RegistryFixture } from '../fixtures/registry-server.js';
import { startStorageFixture, type StorageFixture } from '../fixtures/storage-server.js';
import { buildZip, zipWithEscape } from '../fixtures/zips.js';
import { failure } from '../helpers.js';
import { writeFakePython, type FakePython } from './fake-python.js';

const INIT_V1 = 'NODE_CLASS_MAPPINGS = {"ImageResizeKJv2": object}\n';
const INIT_V2 = 'NODE_CLASS_MAPPINGS = {"ImageResizeKJv2": object, "GetImageSizeAndCount": object}\n';

let cdn: StorageFixture;
let registry: RegistryFixture;
let dir: string;
let comfy: string;
let fake: FakePython;

beforeAll(async () => {
  cdn = await startStorageFixture();
  const symlinkZip = await new Promise<Buffer>((resolve) => {
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.from('__init__.py'), 'link.py', { mode: 0o120777 });
    zip.end();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
  });
  const corrupt = await new Promise<Buffer>((resolve) => {
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.from('print("the bytes the CRC was taken of")\n'), '__init__.py', { compress: false });
    zip.end();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
  });
  corrupt[corrupt.indexOf('bytes')] = 'B'.charCodeAt(0);
  registry = await startRegistryFixture({
    cdn,
    nodes: [
      {
        id: 'comfyui-kjnodes',
        versions: [
          { version: '1.1.0', zip: await buildZip({ '__init__.py': INIT_V1, 'nodes/old.py': 'x = 1\n', 'requirements.txt': 'color-matcher\n', 'install.py': 'open("installed.txt", "w").write("yes")\n' }) },
          { version: '1.1.2', zip: await buildZip({ '__init__.py': INIT_V2, 'nodes/new.py': 'y = 2\n', 'requirements.txt': 'color-matcher\n' }) },
        ],
      },
      { id: 'zip-slip', versions: [{ version: '1.0.0', zip: await zipWithEscape({ '__init__.py': INIT_V1 }) }] },
      { id: 'symlinked', versions: [{ version: '1.0.0', zip: symlinkZip }] },
      { id: 'corrupt', versions: [{ version: '1.0.0', zip: corrupt }] },
      { id: 'careless', ignoresVersion: true, versions: [{ version: '2.0.0', zip: await buildZip({ '__init__.py': INIT_V1 }) }] },
    ],
  });
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-registry-'));
  fake = await writeFakePython(path.join(dir, 'bin'), { installMs: 10 });
});
afterAll(async () => {
  await registry.close();
  await cdn.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  comfy = await mkdtemp(path.join(dir, 'ComfyUI-'));
});

const install = (registryId: string, version?: string, extra: Partial<RegistryNodeSpec> = {}, lines: string[] = []) =>
  installRegistryNode({
    node: { name: registryId, registry: registryId, ...(version ? { version } : {}), ...extra },
    registryUrl: registry.url,
    comfyuiDir: comfy,
    python: fake.python,
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    onOutput: (l) => lines.push(l),
  });
const nodeDir = (id: string) => path.join(comfy, 'custom_nodes', id);

describe('installRegistryNode', () => {
  it('unpacks the release asked for into custom_nodes/<id>, then runs its requirements and install.py', async () => {
    const result = await install('comfyui-kjnodes', '1.1.0');
    expect(result).toEqual({ path: nodeDir('comfyui-kjnodes'), version: '1.1.0', sha256: registry.sha256('comfyui-kjnodes', '1.1.0') });
    expect(await readFile(path.join(nodeDir('comfyui-kjnodes'), '__init__.py'), 'utf8')).toBe(INIT_V1);
    expect(await readFile(path.join(nodeDir('comfyui-kjnodes'), 'installed.txt'), 'utf8')).toBe('yes');
    const pip = (await fake.pipCalls()).at(-1)!;
    expect(pip.requirements).toContain('color-matcher');
    expect(pip.cwd).toBe(nodeDir('comfyui-kjnodes'));
    // Nothing left beside it: no zip, no staging folder.
    expect(await readdir(path.join(comfy, 'custom_nodes'))).toEqual(['comfyui-kjnodes']);
  });

  it('does not download a release already in place, and replaces only its files on an update', async () => {
    await install('comfyui-kjnodes', '1.1.0');
    const before = registry.zipRequests('comfyui-kjnodes', '1.1.0');
    const lines: string[] = [];
    await install('comfyui-kjnodes', '1.1.0', {}, lines);
    expect(registry.zipRequests('comfyui-kjnodes', '1.1.0')).toBe(before);
    expect(lines).toContain('comfyui-kjnodes@1.1.0 is already in place');

    await writeFile(path.join(nodeDir('comfyui-kjnodes'), 'settings.json'), '{"mine":true}');
    const updated = await install('comfyui-kjnodes', '1.1.2');
    expect(updated.version).toBe('1.1.2');
    expect(await readFile(path.join(nodeDir('comfyui-kjnodes'), '__init__.py'), 'utf8')).toBe(INIT_V2);
    expect(existsSync(path.join(nodeDir('comfyui-kjnodes'), 'nodes/old.py'))).toBe(false);
    expect(existsSync(path.join(nodeDir('comfyui-kjnodes'), 'nodes/new.py'))).toBe(true);
    expect(await readFile(path.join(nodeDir('comfyui-kjnodes'), 'settings.json'), 'utf8')).toBe('{"mine":true}');
  });

  it('installs the newest release when no version is pinned', async () => {
    expect((await install('comfyui-kjnodes')).version).toBe('1.1.2');
  });

  it('refuses an archive whose entry climbs out of the node folder, writing nothing', async () => {
    const err = await failure(install('zip-slip', '1.0.0'));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/custom node zip-slip: the registry's zip was refused: invalid relative path: \.\.\/escaped\.py/);
    expect(existsSync(path.join(comfy, 'custom_nodes', 'escaped.py'))).toBe(false);
    expect(existsSync(path.join(comfy, 'escaped.py'))).toBe(false);
    expect(await readdir(path.join(comfy, 'custom_nodes'))).toEqual([]);
  });

  it('refuses symbolic links and bytes that do not match their CRC-32', async () => {
    expect((await failure(install('symlinked', '1.0.0'))).message).toMatch(/holds a symbolic link \(link\.py\)/);
    expect((await failure(install('corrupt', '1.0.0'))).message).toMatch(/__init__\.py does not match its CRC-32/);
    expect(await readdir(path.join(comfy, 'custom_nodes'))).toEqual([]);
  });

  it('says what to do about an unknown id, a version the registry lacks, and a wrong answer', async () => {
    expect((await failure(install('no-such-node', '1.0.0'))).message).toBe(
      'Comfy Registry has no node "no-such-node": check the id (the workflow\'s cnr_id) at https://registry.comfy.org',
    );
    expect((await failure(install('comfyui-kjnodes', '9.9.9'))).message).toBe(
      'Comfy Registry has no version 9.9.9 of comfyui-kjnodes (the newest is 1.1.2): pin a version it lists at https://registry.comfy.org/nodes/comfyui-kjnodes',
    );
    expect((await failure(install('careless', '1.0.0'))).message).toMatch(/has no version 1\.0\.0 of careless \(it answered 2\.0\.0\)/);
    expect(existsSync(nodeDir('careless'))).toBe(false);
  });

  it('checks a pinned sha256 of the zip, naming both hashes', async () => {
    const pin = 'a'.repeat(64);
    const err = await failure(install('comfyui-kjnodes', '1.1.2', { sha256: pin }));
    expect(err.message).toBe(
      `custom node comfyui-kjnodes: the registry's zip has sha256 ${registry.sha256('comfyui-kjnodes', '1.1.2')}, expected ${pin}: not installed`,
    );
    expect(existsSync(nodeDir('comfyui-kjnodes'))).toBe(false);
    const ok = await install('comfyui-kjnodes', '1.1.2', { sha256: registry.sha256('comfyui-kjnodes', '1.1.2') });
    expect(ok.version).toBe('1.1.2');
  });

  it('refuses to unpack over a folder it did not install', async () => {
    await mkdir(nodeDir('comfyui-kjnodes'), { recursive: true });
    expect((await failure(install('comfyui-kjnodes', '1.1.2'))).message).toMatch(/exists but was not installed from the Comfy Registry; remove it/);
  });
});
