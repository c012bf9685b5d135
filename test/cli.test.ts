import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureHub, type FixtureHub } from './fixtures/hub.js';
import { startTestRedis, type TestRedis } from './fixtures/redis.js';
import { startBoard } from '../src/board/server.js';
import { PodState } from '../src/comfyui/pod-state.js';
import { openQueues } from '../src/queue/queues.js';
import { renderWorkflow, writeWorkflow, WORKFLOW_FILES } from './fixtures/workflows.js';
import { REPO_ROOT, freePort, makeWorkspace, silentLog, testConfig, type Workspace } from './helpers.js';

const phoenix = (args: string[], env: Record<string, string>) =>
  execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    extendEnv: false,
    reject: false,
  });

describe('phoenix CLI', () => {
  let redis: TestRedis;
  let hub: FixtureHub;
  let ws: Workspace;

  beforeAll(async () => {
    redis = await startTestRedis();
    hub = await startFixtureHub({ bigFileBytes: 1024 * 1024 });
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await redis.stop();
    await hub.close();
    await ws.cleanup();
  });

  it('exits 2 on bad configuration, listing every problem, before anything is enqueued', async () => {
    const result = await phoenix(['produce'], {
      WORKSPACE: ws.dir,
      REDIS_URL: redis.url,
      COMFYUI_PORT: '99999',
      CIVITAI_MODELS: '12,x1',
      COMFY_CUSTOM_NODE_GIT_URLS: 'git@github.com:a/b.git',
      CIVITAI_TOKEN: 'cli-secret-token',
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('COMFYUI_PORT: must be at most 65535');
    expect(result.stderr).toMatch(/CIVITAI_MODELS\[1\]\.versionId: must be a numeric/);
    expect(result.stderr).toMatch(/COMFY_CUSTOM_NODE_GIT_URLS\[0\]\.url: must be an http\(s\) URL/);
    const client = new Redis({ path: redis.socket });
    expect(await client.keys('*')).toEqual([]);
    client.disconnect();
    expect(result.stdout + result.stderr).not.toContain('cli-secret-token');
  });

  it('refuses a short PHOENIX_PASSWORD at start with exit 2, naming it', async () => {
    for (const command of ['board', 'up']) {
      const result = await phoenix([command], { WORKSPACE: ws.dir, PHOENIX_PASSWORD: 'eleven-char', PHOENIX_PORT: String(await freePort()) });
      expect(result.exitCode, command).toBe(2);
      expect(result.stderr).toContain('PHOENIX_PASSWORD: must be at least 12 characters');
      expect(result.stderr).not.toContain('eleven-char');
    }
  });

  it('adds a model through the running board and reads the status back', async () => {
    const port = await freePort();
    const env = { WORKSPACE: ws.dir, PHOENIX_PORT: String(port), PHOENIX_PASSWORD: 'cli-board-password' };
    const config = await testConfig({ ...env, PHOENIX_API_TOKEN: 'cli-api-token-0123456789' });
    const conn = new Redis({ path: redis.socket, maxRetriesPerRequest: 1 });
    const queues = openQueues(conn, 'phoenix');
    const board = await startBoard({ config, queues, pod: new PodState(conn, queues.prefix), log: silentLog, port, comfyPort: 0, host: '127.0.0.1' });
    try {
      const added = await phoenix(['add', 'black-forest-labs/FLUX.1-demo/ae.safetensors', '--category', 'vae'], env);
      expect(added.exitCode, added.stderr).toBe(0);
      const body = JSON.parse(added.stdout) as { models: { id: string; status: string }[] };
      expect(body.models).toMatchObject([{ status: 'queued', id: expect.stringMatching(/^huggingface-ae-safetensors-/) }]);
      const rejected = await phoenix(['add', 'ftp://example.com/x'], env);
      expect(rejected.exitCode).toBe(2);
      expect(rejected.stdout).toMatch(/source must be one of|must be an http\(s\) URL/);
      const status = await phoenix(['status'], env);
      expect(status.exitCode).toBe(0);
      expect(status.stdout).toMatch(/^ready: false {2}ComfyUI: waiting/);
      expect(status.stdout).toMatch(/queued +black-forest-labs\/FLUX\.1-demo\/ae\.safetensors/);
      // Each model's files follow it, indented: here the one file, not resolved yet.
      expect(status.stdout).toMatch(/\n {6}queued +black-forest-labs\/FLUX\.1-demo\/ae\.safetensors {2}size unknown {2}sha256 not known yet$/);
      // Scripts may use the API token instead of the password.
      const byToken = await phoenix(['status', '--json'], { WORKSPACE: ws.dir, PHOENIX_PORT: String(port), PHOENIX_API_TOKEN: 'cli-api-token-0123456789' });
      expect(byToken.exitCode, byToken.stderr).toBe(0);
      expect(JSON.parse(byToken.stdout)).toMatchObject({ ready: false, comfyui: { auth: 'on' } });
      const wrongToken = await phoenix(['status'], { WORKSPACE: ws.dir, PHOENIX_PORT: String(port), PHOENIX_API_TOKEN: 'not-the-api-token-at-all' });
      expect(wrongToken.exitCode).not.toBe(0);
      const noPassword = await phoenix(['status'], { WORKSPACE: ws.dir, PHOENIX_PORT: String(port) });
      expect(noPassword.exitCode).toBe(2);
      expect(noPassword.stderr).toContain("PHOENIX_PASSWORD (or PHOENIX_API_TOKEN): needed to call the running board's API");
    } finally {
      await board.close();
      await queues.close();
      conn.disconnect();
    }
  });

  it('plans every model from the source APIs without downloading a byte', async () => {
    const manifest = path.join(ws.dir, 'models.toml');
    await writeFile(manifest, hub.manifest);
    const result = await phoenix(['plan', '--json'], { ...hub.env, WORKSPACE: ws.dir, PROVISION_URL: manifest });
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout) as { models: { origin: string; files: { name: string; bytes: number; category: string; sha256: string }[] }[] };
    const files = Object.fromEntries(plan.models.flatMap((m) => m.files.map((f) => [f.name, f])));
    expect(Object.keys(files).sort()).toEqual([
      '4x-UltraSharp.pth',
      'add_detail.safetensors',
      'ae.safetensors',
      'clip_l.safetensors',
      'easynegative.safetensors',
      't5xxl_fp8_e4m3fn.safetensors',
    ]);
    expect(files['add_detail.safetensors']).toMatchObject({ category: 'loras', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(files['ae.safetensors']).toMatchObject({ category: 'vae', bytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(files['4x-UltraSharp.pth']).toMatchObject({ category: 'upscale_models', bytes: 1024 * 1024, sha256: hub.cdn.sha256('/upscalers/4x-UltraSharp.pth') });
    // Probes only: no response body beyond one byte was sent by the CDN.
    expect(hub.cdn.requests.every((r) => r.range === 'bytes=0-0')).toBe(true);
    expect(result.stdout).not.toContain(hub.env.CIVITAI_TOKEN!);
  });

  it('plans a workflow: its models resolved, its registry nodes looked up, nothing downloaded', async () => {
    const flux = await writeWorkflow(ws.dir, WORKFLOW_FILES.fluxDetail, hub.workflowVars, 'flux.json');
    const zipsBefore = hub.registry.zipRequests('comfyui-kjnodes', '1.1.2');
    const result = await phoenix(['plan', '--workflow', flux, '--json'], { ...hub.endpoints, WORKSPACE: ws.dir });
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout) as {
      models: { origin: string; files: { name: string; category: string; sha256: string }[] }[];
      nodes: { name: string; source: string; from: string; error?: string }[];
      workflows: { name: string; origin: string; missing: unknown[]; models: string[]; nodes: string[] }[];
    };
    expect(plan.models.map((m) => `${m.files[0]!.category}/${m.files[0]!.name}`)).toEqual([
      'diffusion_models/flux1-demo_fp8.safetensors',
      'text_encoders/clip_l.safetensors',
      'text_encoders/t5xxl_fp8_e4m3fn.safetensors',
      'vae/flux_vae.safetensors',
      'loras/portrait_detail.safetensors',
    ]);
    // The workflow's own pin for the file from the CDN; the others as their sources publish them.
    expect(plan.models[3]!.files[0]!.sha256).toBe(hub.workflowVars.VAE_SHA256);
    expect(plan.models[4]!.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(plan.nodes).toEqual([
      expect.objectContaining({ name: 'comfyui-kjnodes', source: 'registry', from: 'registry comfyui-kjnodes@1.1.2' }),
      expect.objectContaining({ name: 'ComfyUI-Smart', source: 'git', from: `${hub.endpoints.GITHUB_BASE_URL}/acme/ComfyUI-Smart.git@${hub.smartCommit}` }),
    ]);
    expect(plan.workflows).toMatchObject([{ name: 'flux', origin: '--workflow', missing: [], nodes: ['comfyui-kjnodes', 'ComfyUI-Smart'] }]);
    expect(hub.registry.zipRequests('comfyui-kjnodes', '1.1.2')).toBe(zipsBefore);
  });

  it('plans an API-format workflow against the configuration: what is missing, what waits for ComfyUI', async () => {
    const manifest = path.join(ws.dir, 'models.toml');
    await writeFile(manifest, hub.manifest);
    const api = await writeWorkflow(ws.dir, WORKFLOW_FILES.sdxlFacefix, {}, 'facefix.json');
    const result = await phoenix(['plan', '--workflow', api], { ...hub.env, WORKSPACE: ws.dir, PROVISION_URL: manifest, CIVITAI_MODELS: '4201' });
    expect(result.exitCode).toBe(1);
    const lines = result.stdout.split('\n').filter((l) => /^(workflow|  )/.test(l));
    expect(lines).toEqual([
      'workflow facefix (--workflow, api format): 0 models, 0 custom nodes',
      '  MISSING LoraLoaderModelOnly #11 needs `film_grain.safetensors` in loras — add a source (a model with a url in the workflow, the manifest, or CIVITAI_MODELS / HUGGINGFACE_MODELS)',
      ...['KSampler #3', 'CheckpointLoaderSimple #4', 'EmptyLatentImage #5', 'CLIPTextEncode #6', 'VAEDecode #8', 'SaveImage #9', 'LoraLoader #10', 'LoraLoaderModelOnly #11', 'FaceDetailer #12', 'UltralyticsDetectorProvider #13'].map(
        (node) => `  check   node type \`${node.split(' ')[0]}\` (${node}): checked against ComfyUI once it runs`,
      ),
    ]);
  });

  it('exits 2 on a workflow file that is not one, and adds one through the running board', async () => {
    const broken = path.join(ws.dir, 'broken.json');
    await writeFile(broken, '{"nodes": [');
    const bad = await phoenix(['plan', '--workflow', broken], { WORKSPACE: ws.dir });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain(`--workflow (${broken}): not valid JSON`);

    const port = await freePort();
    const env = { ...hub.endpoints, WORKSPACE: ws.dir, PHOENIX_PORT: String(port), PHOENIX_PASSWORD: 'cli-board-password' };
    const config = await testConfig(env);
    const conn = new Redis({ path: redis.socket, maxRetriesPerRequest: 1 });
    const queues = openQueues(conn, 'clitest');
    const board = await startBoard({ config, queues, pod: new PodState(conn, queues.prefix), log: silentLog, port, comfyPort: 0, host: '127.0.0.1' });
    try {
      const file = path.join(ws.dir, 'upscale.json');
      await writeFile(file, await renderWorkflow(WORKFLOW_FILES.sdxlUpscaleLegacy, hub.workflowVars));
      const added = await phoenix(['add', '--workflow', file], env);
      expect(added.exitCode, added.stderr).toBe(0);
      const body = JSON.parse(added.stdout) as { workflow: { name: string; models: { status: string }[] } };
      expect(body.workflow.name).toBe('upscale');
      expect(body.workflow.models).toHaveLength(2);
      const refused = await phoenix(['add', '--workflow', broken], env);
      expect(refused.exitCode).toBe(2);
      expect(refused.stdout).toContain('body: not valid JSON');
      const missing = await phoenix(['add', '--workflow', path.join(ws.dir, 'absent.json')], env);
      expect(missing.exitCode).toBe(2);
      expect(missing.stderr).toContain('cannot read');
    } finally {
      await board.close();
      await queues.close();
      conn.disconnect();
    }
  });
});
