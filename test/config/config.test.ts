import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { modelId } from '../../src/config/model-spec.js';
import { writeManifest } from '../helpers.js';
import { problemsOf } from './problems.js';

describe('configuration', () => {
  it('applies the documented defaults', async () => {
    const c = await loadConfig({});
    expect(c.workspace).toBe('/workspace');
    expect(c.comfyui.dir).toBe('/workspace/ComfyUI');
    expect(c.comfyui.port).toBe(8188);
    expect(c.server.port).toBe(8189);
    expect(c.server.username).toBe('admin');
    expect(c.server.passwordGenerated).toBe(true);
    expect(c.server.password.length).toBeGreaterThanOrEqual(16);
    expect(c.filebrowser.password.length).toBeGreaterThanOrEqual(12);
    expect(c.download).toEqual({ concurrency: 3, connections: 8, stallTimeoutMs: 60_000, attempts: 5 });
    expect(c.modelsRoot).toBe('/workspace/ComfyUI/models');
    expect(c.persistentStorage).toBeUndefined();
    expect(c.comfyui.waitFor).toBe('all');
    expect(Object.isFrozen(c) && Object.isFrozen(c.download)).toBe(true);
  });

  it('lists every problem at once, each naming its variable', async () => {
    const problems = await problemsOf({
      COMFYUI_PORT: 'abc',
      DOWNLOAD_CONCURRENCY: '0',
      COMFYUI_WAIT_FOR: 'sometimes',
      USE_VOLUME: 'maybe',
      HF_ENDPOINT: 'ftp://example.com',
    });
    expect(problems).toHaveLength(5);
    for (const name of ['COMFYUI_PORT', 'DOWNLOAD_CONCURRENCY', 'COMFYUI_WAIT_FOR', 'USE_VOLUME', 'HF_ENDPOINT']) {
      expect(problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
    }
  });

  it('reports model problems in the same run as a bad variable', async () => {
    const problems = await problemsOf({ PHOENIX_PORT: 'x', CIVITAI_MODELS: 'abc' });
    expect(problems).toEqual([
      expect.stringMatching(/^PHOENIX_PORT: must be a whole number/),
      expect.stringMatching(/^CIVITAI_MODELS\[0\]\.versionId: must be a numeric/),
    ]);
  });

  it('reports bad model and node entries by variable and index', async () => {
    const problems = await problemsOf({
      CIVITAI_MODELS: '123,abc',
      HUGGINGFACE_MODELS: 'not a repo',
      COMFY_CUSTOM_NODE_GIT_URLS: 'file:///etc/passwd,https://github.com/a/good.git@v1',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^CIVITAI_MODELS\[1\]\.versionId: must be a numeric CivitAI model-version id/),
      expect.stringMatching(/^HUGGINGFACE_MODELS\[0\]: "not a repo" is not owner\/repo/),
      expect.stringMatching(/^COMFY_CUSTOM_NODE_GIT_URLS\[0\]\.url: must be an http\(s\) URL/),
    ]);
  });

  it('folds aliases from older templates and reads secrets from _FILE', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-secret-'));
    await writeFile(path.join(dir, 'civitai'), 'civitai-secret-token\n');
    const manifest = await writeManifest('[models.lora]\nx = "https://example.com/x.safetensors"\n');
    const c = await loadConfig({
      HUGGINGFACE_TOKEN: 'hf_alias_token',
      FILEBROWSER_PASSWORD: 'a-long-enough-password',
      HF_REPOS_TO_DOWNLOAD: 'black-forest-labs/FLUX.1-dev@main/ae.safetensors',
      MODELS_MANIFEST: manifest,
      CIVITAI_TOKEN_FILE: path.join(dir, 'civitai'),
    });
    expect(c.tokens.hf).toBe('hf_alias_token');
    expect(c.tokens.civitai).toBe('civitai-secret-token');
    expect(c.filebrowser.password).toBe('a-long-enough-password');
    expect(c.models.map((m) => m.spec)).toEqual([
      { source: 'huggingface', repo: 'black-forest-labs/FLUX.1-dev', revision: 'main', file: 'ae.safetensors' },
      { source: 'url', url: 'https://example.com/x.safetensors', category: 'loras' },
    ]);
    expect(c.secrets).toEqual(expect.arrayContaining(['hf_alias_token', 'civitai-secret-token', 'a-long-enough-password']));
  });

  it('forces the folder of CIVITAI_*_TO_DOWNLOAD and keeps CIVITAI_MODELS to the API type', async () => {
    const c = await loadConfig({ CIVITAI_MODELS: '1', CIVITAI_LORAS_TO_DOWNLOAD: '2, 3', CIVITAI_UPSCALERS_TO_DOWNLOAD: '4' });
    expect(c.models.map((m) => [m.origin, m.spec])).toEqual([
      ['CIVITAI_MODELS[0]', { source: 'civitai', versionId: '1' }],
      ['CIVITAI_LORAS_TO_DOWNLOAD[0]', { source: 'civitai', versionId: '2', category: 'loras' }],
      ['CIVITAI_LORAS_TO_DOWNLOAD[1]', { source: 'civitai', versionId: '3', category: 'loras' }],
      ['CIVITAI_UPSCALERS_TO_DOWNLOAD[0]', { source: 'civitai', versionId: '4', category: 'upscale_models' }],
    ]);
  });

  it('parses the README\'s manifest with folder aliases, short forms and nodes', async () => {
    const manifest = await writeManifest(`
[models.checkpoints.sdxl-base]
source = "huggingface"
repo = "stabilityai/stable-diffusion-xl-base-1.0"
file = "sd_xl_base_1.0.safetensors"
revision = "main"

[models.lora.detail-tweaker]
source = "civitai"
version_id = "58390"
filename = "custom_name.safetensors"

[models.vae.x]
source = "url"
url = "https://example.com/model.safetensors"
headers = { "Authorization" = "Bearer manifest-header-secret" }

[models.unet]
simple = "https://example.com/unet.safetensors"

[nodes.impact-pack]
url = "https://github.com/ltdrdata/ComfyUI-Impact-Pack"
ref = "v8.1"
`);
    const c = await loadConfig({ PROVISION_URL: manifest });
    expect(c.models.map((m) => [m.origin, m.spec.source, m.spec.category])).toEqual([
      ['manifest models.checkpoints.sdxl-base', 'huggingface', 'checkpoints'],
      ['manifest models.lora.detail-tweaker', 'civitai', 'loras'],
      ['manifest models.vae.x', 'url', 'vae'],
      ['manifest models.unet.simple', 'url', 'diffusion_models'],
    ]);
    expect(c.models[1]!.spec).toMatchObject({ versionId: '58390', filename: 'custom_name.safetensors' });
    expect(c.nodes).toEqual([{ name: 'impact-pack', url: 'https://github.com/ltdrdata/ComfyUI-Impact-Pack', ref: 'v8.1' }]);
    expect(c.secrets).toContain('Bearer manifest-header-secret');
  });

  it('names the manifest key of each bad entry', async () => {
    const manifest = await writeManifest(`
[models.weights.a]
source = "url"
url = "https://example.com/a"

[models.loras.b]
source = "ftp"

[models.loras.c]
source = "url"
url = "javascript:alert(1)"
filename = "../../etc/passwd"

[nodes.evil]
url = "--upload-pack=touch /tmp/x"
`);
    const problems = await problemsOf({ PROVISION_URL: manifest });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^manifest models\.weights: not a ComfyUI model folder/),
        expect.stringMatching(/^manifest models\.loras\.b\.source: source must be one of/),
        expect.stringMatching(/^manifest models\.loras\.c\.url: must be an http\(s\) URL/),
        expect.stringMatching(/^manifest models\.loras\.c\.filename: must be a plain file name/),
        expect.stringMatching(/^manifest nodes\.evil\.url: must be an http\(s\) URL/),
      ]),
    );
  });

  it('reports an unreadable or invalid manifest under PROVISION_URL', async () => {
    expect(await problemsOf({ PROVISION_URL: '/nonexistent/models.toml' })).toEqual([
      expect.stringMatching(/^PROVISION_URL: cannot read the manifest: ENOENT/),
    ]);
    const bad = await writeManifest('[models\nbroken');
    expect(await problemsOf({ PROVISION_URL: bad })).toEqual([expect.stringMatching(/^manifest: not valid TOML/)]);
  });

  it('gives the same model the same id, whatever entry point asked for it', async () => {
    const a = await loadConfig({ HUGGINGFACE_MODELS: 'org/repo/file.safetensors' });
    const b = await loadConfig({ HUGGINGFACE_MODELS: 'https://huggingface.co/org/repo/resolve/main/file.safetensors' });
    expect(modelId(a.models[0]!.spec)).toMatch(/^huggingface-file-safetensors-[0-9a-f]{12}$/);
    expect(modelId(a.models[0]!.spec)).not.toBe(modelId(b.models[0]!.spec)); // b pins revision main
    const c = await loadConfig({ HUGGINGFACE_MODELS: 'org/repo/file.safetensors' });
    expect(modelId(c.models[0]!.spec)).toBe(modelId(a.models[0]!.spec));
  });

  it('builds ComfyUI an environment without any secret', async () => {
    const c = await loadConfig({
      PATH: '/usr/bin',
      CIVITAI_TOKEN: 'civ-token-value',
      HF_TOKEN: 'hf-token-value',
      PHOENIX_PASSWORD: 'board-password',
      RUNPOD_API_KEY: 'runpod-key',
      AWS_SECRET_ACCESS_KEY: 'aws-secret',
      SOME_VAR: 'contains hf-token-value inside',
      CUDA_VISIBLE_DEVICES: '0',
    });
    expect(c.comfyui.env).toEqual({ PATH: '/usr/bin', CUDA_VISIBLE_DEVICES: '0' });
  });

  it('puts models on the volume with persistent storage', async () => {
    expect((await loadConfig({ PERSISTENT_STORAGE: '/vol' })).modelsRoot).toBe('/vol/models');
    const v = await loadConfig({ USE_VOLUME: 'true', WORKSPACE: '/ws' });
    expect(v.persistentStorage).toBe('/ws/storage');
    expect(v.modelsRoot).toBe('/ws/storage/models');
  });
});
