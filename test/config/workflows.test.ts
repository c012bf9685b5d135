import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { modelId } from '../../src/config/model-spec.js';
import { startGdriveFixture } from '../fixtures/gdrive-server.js';
import { startStaticServer } from '../fixtures/static-server.js';
import { renderWorkflow, writeWorkflow, WORKFLOW_FILES } from '../fixtures/workflows.js';

const ENDPOINTS = {
  HF_ENDPOINT: 'http://hf.test',
  CIVITAI_BASE_URL: 'http://civitai.test',
  GITHUB_BASE_URL: 'http://git.test',
};
const VARS = { HF: 'http://hf.test', CIVITAI: 'http://civitai.test', CDN: 'http://cdn.test', VAE_SHA256: 'ab'.repeat(32), SMART_COMMIT: 'c0ffee'.padEnd(40, '0') };

let dir: string;
let flux: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-workflows-'));
  flux = await writeWorkflow(dir, WORKFLOW_FILES.fluxDetail, VARS, 'flux.json');
});

async function problemsOf(env: Record<string, string>): Promise<readonly string[]> {
  try {
    await loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('a workflow in the configuration', () => {
  it('becomes the models and nodes it names, each model at its source, folder and name', async () => {
    const c = await loadConfig({ ...ENDPOINTS, PROVISION_WORKFLOWS: flux });
    expect(c.models.map((m) => m.spec)).toEqual([
      { source: 'huggingface', repo: 'Comfy-Org/flux1-demo', file: 'split_files/diffusion_models/flux1-demo_fp8.safetensors', category: 'diffusion_models' },
      { source: 'huggingface', repo: 'comfyanonymous/flux_text_encoders', file: 'clip_l.safetensors', category: 'text_encoders' },
      { source: 'huggingface', repo: 'comfyanonymous/flux_text_encoders', file: 't5xxl_fp8_e4m3fn.safetensors', category: 'text_encoders' },
      { source: 'url', url: 'http://cdn.test/vae/flux_vae.safetensors', category: 'vae', sha256: VARS.VAE_SHA256 },
      { source: 'civitai', versionId: '130072', category: 'loras', filename: 'portrait_detail.safetensors' },
    ]);
    expect(c.models[0]!.origin).toBe('workflow flux UNETLoader #38 in subgraph "Text to Image (FLUX.1 demo)"');
    expect(c.nodes).toEqual([
      { name: 'comfyui-kjnodes', registry: 'comfyui-kjnodes', version: '1.1.2' },
      { name: 'ComfyUI-Smart', url: 'http://git.test/acme/ComfyUI-Smart.git', ref: VARS.SMART_COMMIT },
    ]);
    expect(c.workflows).toEqual([
      expect.objectContaining({
        name: 'flux',
        origin: 'PROVISION_WORKFLOWS[0]',
        format: 'ui',
        models: c.models.map((m) => modelId(m.spec)),
        nodes: ['comfyui-kjnodes', 'ComfyUI-Smart'],
        stamped: true,
        unknownTypes: [],
      }),
    ]);
  });

  it('reads workflows from http(s) URLs and Google Drive share links', async () => {
    const text = await renderWorkflow(WORKFLOW_FILES.fluxDetail, VARS);
    const web = await startStaticServer({ '/shared/portrait.json': { body: Buffer.from(text) } });
    const drive = await startGdriveFixture({ files: [{ id: '1WorkflowOnDrive_x', name: 'sdxl.json', content: Buffer.from(await renderWorkflow(WORKFLOW_FILES.sdxlFacefix)) }] });
    try {
      const c = await loadConfig({
        ...ENDPOINTS,
        GDRIVE_BASE_URL: drive.url,
        GDRIVE_USERCONTENT_URL: drive.usercontentUrl,
        PROVISION_WORKFLOWS: `${web.url('/shared/portrait.json')},${drive.shareLink('1WorkflowOnDrive_x')}`,
      });
      expect(c.workflows.map((w) => [w.name, w.origin, w.format])).toEqual([
        ['portrait', 'PROVISION_WORKFLOWS[0]', 'ui'],
        ['drive-1WorkflowOnDrive_x', 'PROVISION_WORKFLOWS[1]', 'api'],
      ]);
      expect(c.workflows[1]!.files.map((f) => f.file)).toContain('film_grain.safetensors');
    } finally {
      await Promise.all([web.close(), drive.close()]);
    }
  });

  it('makes a file the manifest or another workflow also asks for one download', async () => {
    const manifest = path.join(dir, 'models.toml');
    await writeFile(
      manifest,
      `[models.text_encoders.clip]
source = "huggingface"
repo = "comfyanonymous/flux_text_encoders"
file = "clip_l.safetensors"

[models.vae.ae]
source = "url"
url = "http://mirror.test/flux/flux_vae.safetensors"

[workflows.portrait]
path = "flux.json"
`,
    );
    const copy = await writeWorkflow(dir, WORKFLOW_FILES.fluxDetail, VARS, 'flux-copy.json');
    const c = await loadConfig({ ...ENDPOINTS, PROVISION_URL: manifest, PROVISION_WORKFLOWS: copy });
    // 2 from the manifest + 3 more from the first workflow; the second adds none.
    expect(c.models).toHaveLength(5);
    expect(c.workflows.map((w) => w.name)).toEqual(['portrait', 'flux-copy']);
    expect(c.workflows[0]!.models).toEqual(c.workflows[1]!.models);
    const ids = c.models.map((m) => modelId(m.spec));
    expect(c.workflows[0]!.models).toEqual(expect.arrayContaining(ids.slice(0, 2)));
    // The manifest's ae takes the workflow's sha256 pin; the workflow is told where its file comes from.
    expect(c.models[1]!.spec).toMatchObject({ url: 'http://mirror.test/flux/flux_vae.safetensors', sha256: VARS.VAE_SHA256 });
    expect(c.workflows[0]!.notes).toContain('vae/flux_vae.safetensors comes from manifest models.vae.ae');
    expect(c.nodes.map((n) => n.name)).toEqual(['comfyui-kjnodes', 'ComfyUI-Smart']);
  });

  it('takes a file a whole Hugging Face repository in the manifest brings as that download', async () => {
    const manifest = path.join(dir, 'repo.toml');
    await writeFile(manifest, `[models.text_encoders.flux]\nsource = "huggingface"\nrepo = "comfyanonymous/flux_text_encoders"\n`);
    const c = await loadConfig({ ...ENDPOINTS, PROVISION_URL: manifest, PROVISION_WORKFLOWS: flux });
    const repoId = modelId(c.models[0]!.spec);
    expect(c.models).toHaveLength(4);
    expect(c.workflows[0]!.models.filter((id) => id === repoId)).toHaveLength(1);
    expect(c.workflows[0]!.notes).toEqual(
      expect.arrayContaining(['text_encoders/clip_l.safetensors comes from manifest models.text_encoders.flux', 'text_encoders/t5xxl_fp8_e4m3fn.safetensors comes from manifest models.text_encoders.flux']),
    );
  });

  it('keeps a configured node version over a workflow\'s, and the newer release between workflows', async () => {
    const c = await loadConfig({ ...ENDPOINTS, PROVISION_WORKFLOWS: flux, COMFY_NODES: 'comfyui-kjnodes@1.0.0,rgthree-comfy' });
    expect(c.nodes.slice(0, 2)).toEqual([
      { name: 'comfyui-kjnodes', registry: 'comfyui-kjnodes', version: '1.0.0' },
      { name: 'rgthree-comfy', registry: 'rgthree-comfy' },
    ]);
    expect(c.workflows[0]!.notes).toContain('custom_nodes/comfyui-kjnodes: registry comfyui-kjnodes@1.0.0 is installed, not registry comfyui-kjnodes@1.1.2');

    const older = (await renderWorkflow(WORKFLOW_FILES.fluxDetail, VARS)).replace('"ver": "1.1.2"', '"ver": "1.1.0"');
    const olderPath = path.join(dir, 'older.json');
    await writeFile(olderPath, older);
    const both = await loadConfig({ ...ENDPOINTS, PROVISION_WORKFLOWS: `${olderPath},${flux}` });
    expect(both.nodes[0]).toEqual({ name: 'comfyui-kjnodes', registry: 'comfyui-kjnodes', version: '1.1.2' });
  });

  it('reports two different sha256 pins for one file', async () => {
    const pinned = path.join(dir, 'pinned.toml');
    await writeFile(pinned, `[models.vae.ae]\nsource = "url"\nurl = "http://cdn.test/vae/flux_vae.safetensors"\nsha256 = "${'cd'.repeat(32)}"\n`);
    const problems = await problemsOf({ ...ENDPOINTS, PROVISION_URL: pinned, PROVISION_WORKFLOWS: flux });
    expect(problems).toEqual([
      `PROVISION_WORKFLOWS[0] (flux): VAELoader #39 in subgraph "Text to Image (FLUX.1 demo)" pins sha256 ${VARS.VAE_SHA256} for vae/flux_vae.safetensors, but manifest models.vae.ae pins ${'cd'.repeat(32)}`,
    ]);
  });

  it('exits on files that are not workflows, naming each', async () => {
    const notWorkflow = path.join(dir, 'settings.json');
    await writeFile(notWorkflow, '{"theme": "dark"}');
    const broken = path.join(dir, 'broken.json');
    await writeFile(broken, '{"nodes": [');
    const badDir = path.join(dir, 'bad-dir.json');
    await writeFile(badDir, (await renderWorkflow(WORKFLOW_FILES.fluxDetail, VARS)).replace('"directory": "vae"', '"directory": "../../etc"'));
    const problems = await problemsOf({ ...ENDPOINTS, PROVISION_WORKFLOWS: [notWorkflow, broken, path.join(dir, 'absent.json'), badDir].join(',') });
    expect(problems).toEqual([
      expect.stringMatching(/^PROVISION_WORKFLOWS\[0\] \(.*settings\.json\): is not a ComfyUI workflow: expected the UI format/),
      expect.stringMatching(/^PROVISION_WORKFLOWS\[1\] \(.*broken\.json\): not valid JSON: /),
      expect.stringMatching(/^PROVISION_WORKFLOWS\[2\] \(.*absent\.json\): cannot read the workflow: ENOENT/),
      'PROVISION_WORKFLOWS[3] (bad-dir): VAELoader #39 in subgraph "Text to Image (FLUX.1 demo)" model flux_vae.safetensors: directory "../../etc" is not a ComfyUI model folder',
    ]);
  });

  it('reads [workflows] and registry nodes from the manifest, and refuses bad entries', async () => {
    const manifest = path.join(dir, 'nodes.toml');
    await writeFile(manifest, `[nodes.kj]\nregistry = "comfyui-kjnodes"\nversion = "1.1.2"\n\n[nodes.bad]\nregistry = "x"\nversion = "latest"\n\n[workflows.a]\nurl = "x.json"\npath = "y.json"\n`);
    expect(await problemsOf({ PROVISION_URL: manifest })).toEqual([
      'manifest nodes.bad.version: must be a released version like 1.2.3 (as registry.comfy.org lists it)',
      'manifest workflows.a: give the workflow file as url = "https://…" or path = "…" (one of them)',
    ]);
  });
});

describe('CivitAI identifiers', () => {
  it('takes AIR URNs and civitai.com URLs wherever a CivitAI model is accepted', async () => {
    const manifest = path.join(dir, 'civitai.toml');
    await writeFile(manifest, `[models.loras.a]\nsource = "civitai"\nair = "urn:air:sdxl:lora:civitai:328553@368189"\n\n[models.loras.b]\nsource = "civitai"\nurl = "https://civitai.com/models/4201/realistic-vision?modelVersionId=130072"\n\n[models.checkpoints.c]\nsource = "civitai"\nversion_id = "urn:air:sd1:checkpoint:civitai:4201"\nfile = "model.ckpt"\n`);
    const c = await loadConfig({ PROVISION_URL: manifest, CIVITAI_MODELS: 'urn:air:flux1:lora:civitai:58000@58390,https://civitai.com/api/download/models/99?fileId=7' });
    expect(c.models.map((m) => m.spec)).toEqual([
      { source: 'civitai', modelId: '58000', versionId: '58390' },
      { source: 'civitai', versionId: '99', fileId: '7' },
      { source: 'civitai', category: 'loras', modelId: '328553', versionId: '368189' },
      { source: 'civitai', category: 'loras', modelId: '4201', versionId: '130072' },
      { source: 'civitai', category: 'checkpoints', modelId: '4201', file: 'model.ckpt' },
    ]);
    // The same version named two ways is one model.
    expect(modelId(c.models[0]!.spec)).toBe(modelId({ source: 'civitai', versionId: '58390' }));
    expect(await problemsOf({ CIVITAI_MODELS: 'urn:air:sdxl:lora:huggingface:abc' })).toEqual([
      'CIVITAI_MODELS[0].versionId: must be a numeric CivitAI model-version id (or an AIR urn:air:…:civitai:<model>@<version>, or a civitai.com model URL)',
    ]);
  });
});

describe('webhooks', () => {
  it('needs a secret with the URL, and keeps both out of ComfyUI\'s environment', async () => {
    expect(await problemsOf({ PHOENIX_WEBHOOK_URL: 'https://hooks.example/T0/B0/secret-path' })).toEqual([
      'PHOENIX_WEBHOOK_SECRET: needed with PHOENIX_WEBHOOK_URL, to sign each event (X-Phoenix-Signature)',
    ]);
    const env = { PHOENIX_WEBHOOK_URL: 'https://hooks.example/T0/B0/secret-path', PHOENIX_WEBHOOK_SECRET: 'whsec-0123456789abcdef' };
    const c = await loadConfig(env);
    expect(c.webhook).toEqual({ url: env.PHOENIX_WEBHOOK_URL, secret: env.PHOENIX_WEBHOOK_SECRET });
    expect(c.secrets).toEqual(expect.arrayContaining(Object.values(env)));
    expect(JSON.stringify(c.comfyui.env)).not.toMatch(/secret-path|whsec/);
  });
});
