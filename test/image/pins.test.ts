import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readVersions } from '../../src/board/versions.js';
import { REPO_ROOT } from '../helpers.js';

const PINS = ['BASE_IMAGE', 'NODE_VERSION', 'COMFYUI_REF', 'FILEBROWSER_VERSION', 'FILEBROWSER_SHA256'];

const read = (file: string) => readFile(path.join(REPO_ROOT, file), 'utf8');

function matches(text: string, pattern: RegExp): Record<string, string> {
  return Object.fromEntries([...text.matchAll(pattern)].map((m) => [m[1]!, m[2] ?? '']));
}

/** config/versions.conf is the one place a pin changes; the Dockerfile and bake defaults follow it. */
describe('image pins', () => {
  it('has the same defaults in versions.conf, the Dockerfile and docker-bake.hcl', async () => {
    const conf = matches(await read('config/versions.conf'), /^([A-Z0-9_]+)=(.*)$/gm);
    const dockerfile = matches(await read('Dockerfile'), /^ARG ([A-Z0-9_]+)=(.*)$/gm);
    const bake = matches(await read('docker-bake.hcl'), /^variable "([A-Z0-9_]+)" \{ default = "(.*)" \}$/gm);
    for (const pin of PINS) {
      expect(conf, pin).toHaveProperty(pin);
      expect(dockerfile[pin], `Dockerfile ARG ${pin}`).toBe(conf[pin]);
      expect(bake[pin], `docker-bake.hcl ${pin}`).toBe(conf[pin]);
    }
  });

  it('builds on an NGC PyTorch release from 2025 on (sm_120) and Node 24', async () => {
    const versions = await readVersions();
    expect(versions.base_image).toMatch(/^nvcr\.io\/nvidia\/pytorch:(2[5-9])\.\d\d-py3$/);
    expect(versions.node_version).toBe('24');
    expect(versions.comfyui_ref).toMatch(/^v\d+\.\d+\.\d+$/);
  });
});
