import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredModelSpec } from '../../src/config/model-spec.js';
import { TransientError, UserError } from '../../src/lib/errors.js';
import { globToRegExp } from '../../src/lib/glob.js';
import { resolveModel } from '../../src/sources/index.js';
import { fakeSafetensors, sawSecret, sha256Hex } from '../fixtures/http-server.js';
import { startHuggingfaceFixture, type HuggingfaceFixture } from '../fixtures/huggingface-server.js';
import { fetchResolved, sourceContext, configInTempWorkspace } from '../fixtures/source-context.js';
import { startStorageFixture, type StorageFixture } from '../fixtures/storage-server.js';
import { failure } from '../helpers.js';

const TOKEN = 'hf_granted0123456789abcdef';
const OTHER_TOKEN = 'hf_stranger9876543210fedcba';
const base = fakeSafetensors('base', 5000);
const extra = fakeSafetensors('extra', 3000);
const vae = fakeSafetensors('vae', 2000);
const te = fakeSafetensors('te', 2100);
const unet = fakeSafetensors('unet', 2200);
const spaced = fakeSafetensors('spaced', 1500);
const readme = Buffer.from('# SDXL\nA test model card.\n');
const flux = fakeSafetensors('flux', 4000);

let cdn: StorageFixture;
let hub: HuggingfaceFixture;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  cdn = await startStorageFixture();
  hub = await startHuggingfaceFixture({
    cdn,
    pageSize: 3,
    repos: [
      {
        id: 'acme/sdxl',
        revisions: ['v1'],
        files: [
          { path: 'sd_xl_base.safetensors', content: base },
          { path: 'extra.safetensors', content: extra },
          { path: 'README.md', content: readme },
          { path: 'vae/diffusion_pytorch_model.safetensors', content: vae },
          { path: 'text_encoder/model.safetensors', content: te },
          { path: 'unet/model.safetensors', content: unet },
          { path: 'loras/my model #1.safetensors', content: spaced },
        ],
      },
      { id: 'acme/gated', gated: true, grantedTokens: [TOKEN], files: [{ path: 'flux.safetensors', content: flux }] },
      { id: 'acme/secret', private: true, grantedTokens: [TOKEN], files: [{ path: 'x.safetensors', content: flux }] },
      { id: 'datasets/acme/weights', files: [{ path: 'w.safetensors', content: extra }, { path: 'data.csv', content: readme }] },
    ],
  });
});

afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await hub?.close();
  await cdn?.close();
});

async function context(env: Record<string, string> = {}) {
  const { config, cleanup } = await configInTempWorkspace({ HF_ENDPOINT: hub.url, ...env });
  cleanups.push(cleanup);
  return sourceContext(config);
}

function spec(repo: string, extra: Partial<Extract<StoredModelSpec, { source: 'huggingface' }>> = {}): StoredModelSpec {
  return { source: 'huggingface', repo, ...extra };
}

describe('Hugging Face source: one file', () => {
  it('reads size and sha256 of an LFS file from the 302 and downloads it from the CDN', async () => {
    const [file] = await resolveModel(spec('acme/sdxl', { file: 'sd_xl_base.safetensors' }), await context());
    expect(file).toMatchObject({ name: 'sd_xl_base.safetensors', bytes: base.length, sha256: sha256Hex(base) });
    expect(file!.category).toBeUndefined();
    expect(file!.request.url).toBe(`${hub.url}/acme/sdxl/resolve/${hub.commitOf('acme/sdxl')}/sd_xl_base.safetensors`);
    expect(await fetchResolved(file!.request)).toEqual({ status: 200, bytes: base.length, sha256: sha256Hex(base) });
  });

  it('leaves sha256 unset for a small file whose ETag is a git sha1', async () => {
    const [file] = await resolveModel(spec('acme/sdxl', { file: 'README.md' }), await context());
    expect(file).toMatchObject({ name: 'README.md', bytes: readme.length });
    expect(file!.sha256).toBeUndefined();
  });

  it('encodes each path segment and keeps the revision', async () => {
    const [file] = await resolveModel(spec('acme/sdxl', { file: 'loras/my model #1.safetensors', revision: 'v1' }), await context());
    expect(file).toMatchObject({ name: 'my model #1.safetensors', bytes: spaced.length, sha256: sha256Hex(spaced) });
    expect(hub.requests.some((r) => r.path === '/acme/sdxl/resolve/v1/loras/my%20model%20%231.safetensors')).toBe(true);
  });

  it('sends HF_TOKEN to the Hub only, never to the CDN', async () => {
    const cdnSeen = cdn.requests.length;
    const [file] = await resolveModel(spec('acme/gated', { file: 'flux.safetensors' }), await context({ HF_TOKEN: TOKEN }));
    expect(file).toMatchObject({ name: 'flux.safetensors', bytes: flux.length, sha256: sha256Hex(flux) });
    expect(file!.request.headers).toEqual({ authorization: `Bearer ${TOKEN}` });
    expect(file!.request.headersOrigin).toBe(hub.url);
    expect(await fetchResolved(file!.request)).toEqual({ status: 200, bytes: flux.length, sha256: sha256Hex(flux) });
    const toCdn = cdn.requests.slice(cdnSeen);
    expect(toCdn.length).toBeGreaterThanOrEqual(2);
    expect(sawSecret(toCdn, TOKEN)).toBe(false);
    expect(hub.requests.some((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('explains a gated repository without a token and with a token lacking access', async () => {
    const without = await failure(resolveModel(spec('acme/gated', { file: 'flux.safetensors' }), await context()));
    expect(without).toBeInstanceOf(UserError);
    expect(without.message).toContain(`gated: accept the licence at ${hub.url}/acme/gated and set HF_TOKEN`);

    const stranger = await failure(resolveModel(spec('acme/gated', { file: 'flux.safetensors' }), await context({ HF_TOKEN: OTHER_TOKEN })));
    expect(stranger).toBeInstanceOf(UserError);
    expect(stranger.message).toContain(`your token has no access yet: request access at ${hub.url}/acme/gated`);
  });

  it('names the missing repository, file and revision', async () => {
    const ctx = await context();
    const repo = await failure(resolveModel(spec('acme/nope', { file: 'a.safetensors' }), ctx));
    expect(repo).toBeInstanceOf(UserError);
    expect(repo.message).toMatch(/no public repository acme\/nope.*set HF_TOKEN if it is private/);

    const hidden = await failure(resolveModel(spec('acme/secret', { file: 'x.safetensors' }), await context({ HF_TOKEN: OTHER_TOKEN })));
    expect(hidden.message).toMatch(/no repository acme\/secret that HF_TOKEN can read/);

    const entry = await failure(resolveModel(spec('acme/sdxl', { file: 'missing.safetensors' }), ctx));
    expect(entry).toBeInstanceOf(UserError);
    expect(entry.message).toBe('Hugging Face repository acme/sdxl has no file "missing.safetensors" at revision "main"');

    const revision = await failure(resolveModel(spec('acme/sdxl', { file: 'README.md', revision: 'v9' }), ctx));
    expect(revision).toBeInstanceOf(UserError);
    expect(revision.message).toBe('Hugging Face repository acme/sdxl has no revision "v9"');
  });

  it('retries a 429 after its Retry-After', async () => {
    const ctx = await context();
    hub.rateLimit(1);
    const err = await failure(resolveModel(spec('acme/sdxl', { file: 'README.md' }), ctx));
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).retryAfterMs).toBe(7000);
  });
});

describe('Hugging Face source: whole repository', () => {
  it('takes the top-level *.safetensors by default, following tree pagination', async () => {
    const treeSeen = hub.requests.length;
    const files = await resolveModel(spec('acme/sdxl'), await context());
    expect(files.map((f) => [f.name, f.bytes, f.sha256])).toEqual([
      ['extra.safetensors', extra.length, sha256Hex(extra)],
      ['sd_xl_base.safetensors', base.length, sha256Hex(base)],
    ]);
    expect(files[0]!.request.url).toBe(`${hub.url}/acme/sdxl/resolve/main/extra.safetensors`);
    const pages = hub.requests.slice(treeSeen).filter((r) => r.path.startsWith('/api/models/acme/sdxl/tree/main'));
    // 7 files + 4 directories, 3 per page.
    expect(pages.map((r) => new URLSearchParams(r.path.split('?')[1]).get('cursor'))).toEqual([null, '3', '6', '9']);
  });

  it('applies include globs and keeps clashing names apart', async () => {
    const ctx = await context();
    const all = await resolveModel(spec('acme/sdxl', { include: ['**/*.safetensors'] }), ctx);
    expect(all.map((f) => f.name).sort()).toEqual([
      'diffusion_pytorch_model.safetensors',
      'extra.safetensors',
      'my model #1.safetensors',
      'sd_xl_base.safetensors',
      'text_encoder_model.safetensors',
      'unet_model.safetensors',
    ]);
    expect(all.find((f) => f.name === 'unet_model.safetensors')).toMatchObject({ bytes: unet.length, sha256: sha256Hex(unet) });

    const only = await resolveModel(spec('acme/sdxl', { include: ['vae/*', 'README.?d'] }), ctx);
    expect(only.map((f) => [f.name, f.sha256])).toEqual([
      ['README.md', undefined],
      ['diffusion_pytorch_model.safetensors', sha256Hex(vae)],
    ]);
  });

  it('says when nothing matches', async () => {
    const err = await failure(resolveModel(spec('acme/sdxl', { include: ['*.gguf'] }), await context()));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain('has no file matching "*.gguf" at revision "main"');
  });

  it('surfaces a gated repository while planning, and resolves it with access', async () => {
    const err = await failure(resolveModel(spec('acme/gated'), await context()));
    expect(err.message).toContain('gated: accept the licence at');
    const files = await resolveModel(spec('acme/gated'), await context({ HF_TOKEN: TOKEN }));
    expect(files.map((f) => f.name)).toEqual(['flux.safetensors']);
  });

  it('lists datasets under /api/datasets and downloads from /datasets/', async () => {
    const files = await resolveModel(spec('datasets/acme/weights'), await context());
    expect(files).toHaveLength(1);
    expect(files[0]!.request.url).toBe(`${hub.url}/datasets/acme/weights/resolve/main/w.safetensors`);
    expect(hub.requests.some((r) => r.path.startsWith('/api/datasets/acme/weights/tree/main?recursive=true'))).toBe(true);
    expect(await fetchResolved(files[0]!.request)).toMatchObject({ status: 200, sha256: sha256Hex(extra) });
  });

  it('reports an unknown revision from the tree API', async () => {
    const err = await failure(resolveModel(spec('acme/sdxl', { revision: 'nope' }), await context()));
    expect(err.message).toBe('Hugging Face repository acme/sdxl has no revision "nope"');
  });
});

describe('include globs', () => {
  it('keeps * and ? within a folder and lets ** cross folders', () => {
    const match = (glob: string, path: string) => globToRegExp(glob).test(path);
    expect(match('*.safetensors', 'a.safetensors')).toBe(true);
    expect(match('*.safetensors', 'sub/a.safetensors')).toBe(false);
    expect(match('**/*.safetensors', 'a.safetensors')).toBe(true);
    expect(match('**/*.safetensors', 'x/y/a.safetensors')).toBe(true);
    expect(match('unet/*', 'unet/a.bin')).toBe(true);
    expect(match('unet/*', 'unet/deep/a.bin')).toBe(false);
    expect(match('unet/**', 'unet/deep/a.bin')).toBe(true);
    expect(match('model-?.gguf', 'model-1.gguf')).toBe(true);
    expect(match('model-?.gguf', 'model-10.gguf')).toBe(false);
    expect(match('a+b(1).bin', 'a+b(1).bin')).toBe(true);
    expect(match('a.bin', 'axbin')).toBe(false);
  });
});
