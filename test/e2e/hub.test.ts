import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { up, type Stack } from '../../src/runtime/up.js';
import { HUB_TOKENS, startFixtureHub, type FixtureHub } from '../fixtures/hub.js';
import { sawSecret } from '../fixtures/http-server.js';
import { comfyPorts, eventually, freePort, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

/** Every source and a custom node through the real stack, against the fixture hub. */
describe('provisioning from every source', () => {
  let hub: FixtureHub;
  let ws: Workspace;
  let stack: Stack;
  let status: PodStatus;
  const password = 'hub-test-password';

  beforeAll(async () => {
    hub = await startFixtureHub({ bigFileBytes: 8 * 1024 * 1024, cdnBytesPerSecond: 16 * 1024 * 1024 });
    ws = await makeWorkspace();
    const manifest = path.join(ws.dir, 'models.toml');
    await writeFile(manifest, hub.manifest);
    const config = await testConfig({
      ...hub.env,
      WORKSPACE: ws.dir,
      PROVISION_URL: manifest,
      PHOENIX_PORT: String(await freePort()),
      ...(await comfyPorts()),
      PHOENIX_PASSWORD: password,
      CIVITAI_MODELS: '4201',
      HUGGINGFACE_MODELS: 'comfyanonymous/flux_text_encoders/clip_l.safetensors',
    });
    stack = await up(config, silentLog, { prefix: `hub${process.pid}` });
    const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` };
    status = await eventually(async () => {
      const s = (await (await fetch(`${stack.board.url}/status`, { headers: auth })).json()) as PodStatus;
      return s.ready ? s : undefined;
    }, 90_000, 'ready');
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await hub?.close();
    await ws?.cleanup();
  });

  it('puts each model in the folder ComfyUI expects', () => {
    const placed = status.models.map((m) => [m.origin.replace('manifest ', ''), m.state, m.path && path.relative(ws.comfyDir, m.path)]);
    expect(placed.sort()).toEqual([
      ['CIVITAI_MODELS[0]', 'ready', 'models/checkpoints/realisticVision_v60.safetensors'],
      ['HUGGINGFACE_MODELS[0]', 'ready', 'models/text_encoders/clip_l.safetensors'],
      ['models.embeddings.easynegative', 'ready', 'models/embeddings/easynegative.safetensors'],
      ['models.loras.detail-tweaker', 'ready', 'models/loras/add_detail.safetensors'],
      ['models.text_encoders.flux', 'ready', expect.stringMatching(/^models\/text_encoders\/(clip_l|t5xxl_fp8_e4m3fn)\.safetensors$/)],
      ['models.upscale_models.ultrasharp', 'ready', 'models/upscale_models/4x-UltraSharp.pth'],
      ['models.vae.flux-ae', 'ready', 'models/vae/ae.safetensors'],
    ]);
    const encoders = status.models.find((m) => m.origin.endsWith('text_encoders.flux'))!;
    expect(encoders.name).toBe('clip_l.safetensors, t5xxl_fp8_e4m3fn.safetensors');
  });

  it('lists every file of a model in /status, each with its path and verified sha256', async () => {
    const encoders = status.models.find((m) => m.origin.endsWith('text_encoders.flux'))!;
    expect(encoders.sha256).toBeNull();
    expect(encoders.files.map((f) => [f.name, f.state, path.relative(ws.comfyDir, f.path!)])).toEqual([
      ['clip_l.safetensors', 'ready', 'models/text_encoders/clip_l.safetensors'],
      ['t5xxl_fp8_e4m3fn.safetensors', 'ready', 'models/text_encoders/t5xxl_fp8_e4m3fn.safetensors'],
    ]);
    for (const file of encoders.files) {
      expect(file.sha256).toBe(createHash('sha256').update(await readFile(file.path!)).digest('hex'));
      expect(file.bytes).toBe((await readFile(file.path!)).length);
    }
    const single = status.models.find((m) => m.origin.endsWith('ultrasharp'))!;
    expect(single.files).toEqual([{ name: '4x-UltraSharp.pth', path: single.path, bytes: single.bytes, sha256: single.sha256, state: 'ready' }]);
  });

  it('verifies what it downloads against the published checksums', async () => {
    const upscaler = status.models.find((m) => m.origin.endsWith('ultrasharp'))!;
    const bytes = await readFile(upscaler.path!);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(hub.cdn.sha256('/upscalers/4x-UltraSharp.pth'));
    expect(upscaler.sha256).toBe(hub.cdn.sha256('/upscalers/4x-UltraSharp.pth'));
  });

  it('takes models posted to the API the same way, without restarting ComfyUI', async () => {
    const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`, 'content-type': 'application/json' };
    const res = await fetch(`${stack.board.url}/api/models`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        models: [
          { source: 'civitai', versionId: '58390', filename: 'detail-copy.safetensors' },
          { source: 'huggingface', repo: 'black-forest-labs/FLUX.1-demo', file: 'ae.safetensors', filename: 'ae-copy.safetensors' },
          { source: 'gdrive', url: hub.gdrive.shareLink('1DemoEmbeddingFile_x'), filename: 'easy-copy.safetensors', category: 'embedding' },
        ],
      }),
    });
    expect(res.status).toBe(202);
    const after = await eventually(async () => {
      const s = (await (await fetch(`${stack.board.url}/status`, { headers: auth })).json()) as PodStatus;
      const added = s.models.filter((m) => m.origin === 'api');
      return added.length === 3 && added.every((m) => m.state === 'ready') ? s : undefined;
    }, 60_000, 'the models added through the API');
    const added = after.models.filter((m) => m.origin === 'api').map((m) => path.relative(ws.comfyDir, m.path!));
    expect(added.sort()).toEqual([
      'models/embeddings/easy-copy.safetensors',
      'models/loras/detail-copy.safetensors',
      'models/vae/ae-copy.safetensors',
    ]);
    expect(after.comfyui).toMatchObject({ state: 'running', pid: status.comfyui.pid, restarts: 0 });
  });

  it('installs the custom node at its tag', () => {
    expect(status.nodes).toMatchObject([{ name: 'ComfyUI-Demo-Nodes', ref: 'v1.0', state: 'installed', error: null }]);
    expect(status.nodes[0]!.commit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('sends each token to its own service only', () => {
    expect(sawSecret(hub.civitai.requests, HUB_TOKENS.civitai)).toBe(true);
    expect(sawSecret(hub.huggingface.requests, HUB_TOKENS.hf)).toBe(true);
    expect(sawSecret(hub.storage.requests, HUB_TOKENS.civitai)).toBe(false);
    expect(sawSecret(hub.civitai.requests, HUB_TOKENS.hf)).toBe(false);
    expect(sawSecret(hub.huggingface.requests, HUB_TOKENS.civitai)).toBe(false);
    for (const token of Object.values(HUB_TOKENS)) {
      expect(sawSecret(hub.gdrive.requests, token)).toBe(false);
      expect(hub.cdn.requests.every((r) => !JSON.stringify(r).includes(token))).toBe(true);
    }
  });
});
