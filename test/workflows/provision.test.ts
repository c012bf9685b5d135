import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobIds } from '../../src/queue/jobs.js';
import { startFixtureHub, type FixtureHub } from '../fixtures/hub.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fixtures/webhook-receiver.js';
import { renderWorkflow, writeWorkflow, WORKFLOW_FILES } from '../fixtures/workflows.js';
import { eventually } from '../helpers.js';
import { startPod, type Pod } from './harness.js';

const SECRET = 'whsec-provision-0123456789';

/** Workflows provisioned by the real workers over a real Redis, against the fixture hub. */
describe('provisioning from workflows', () => {
  let redis: TestRedis;
  let hub: FixtureHub;
  let receiver: WebhookReceiver;
  let dir: string;
  let pod: Pod | undefined;

  beforeAll(async () => {
    redis = await startTestRedis();
    hub = await startFixtureHub({ bigFileBytes: 1024 * 1024 });
    receiver = await startWebhookReceiver(SECRET);
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-wf-'));
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), hub.close(), receiver.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await pod?.stop();
    pod = undefined;
    receiver.events.length = 0;
  });

  const webhook = () => ({ PHOENIX_WEBHOOK_URL: receiver.url, PHOENIX_WEBHOOK_SECRET: SECRET });

  it('brings up what a workflow needs, pinned and verified, and tells the webhook, signed', async () => {
    const flux = await writeWorkflow(dir, WORKFLOW_FILES.fluxDetail, hub.workflowVars, 'flux.json');
    pod = await startPod(redis.socket, { ...hub.endpoints, ...webhook(), PROVISION_WORKFLOWS: flux });
    const ready = await pod.until((s) => s.ready && s.workflows[0]?.ready === true, 'the workflow ready');

    expect(ready.ready).toBe(true);
    expect(ready.models.map((m) => [m.category, m.name, m.state])).toEqual(
      expect.arrayContaining([
        ['diffusion_models', 'flux1-demo_fp8.safetensors', 'ready'],
        ['text_encoders', 'clip_l.safetensors', 'ready'],
        ['text_encoders', 't5xxl_fp8_e4m3fn.safetensors', 'ready'],
        ['vae', 'flux_vae.safetensors', 'ready'],
        ['loras', 'portrait_detail.safetensors', 'ready'],
      ]),
    );
    expect(ready.models).toHaveLength(5);
    expect(ready.models.every((m) => /^[0-9a-f]{64}$/.test(m.sha256 ?? ''))).toBe(true);
    expect(ready.nodes.map((n) => [n.name, n.source, n.ref, n.version ?? n.commit, n.state])).toEqual([
      ['comfyui-kjnodes', 'registry', '1.1.2', '1.1.2', 'installed'],
      ['ComfyUI-Smart', 'git', hub.smartCommit, hub.smartCommit, 'installed'],
    ]);
    expect(ready.workflows).toEqual([
      {
        name: 'flux',
        origin: 'PROVISION_WORKFLOWS[0]',
        ready: true,
        models: expect.any(Array),
        nodes: ['comfyui-kjnodes', 'ComfyUI-Smart'],
        missing: [],
        unverified: [],
        failed: [],
        notes: [],
      },
    ]);
    expect([...ready.workflows[0]!.models].sort()).toEqual(ready.models.map((m) => m.id).sort());
    // The registry's zip was unpacked and its install.py ran; ComfyUI loaded both packs at its one start.
    const kj = path.join(pod.ws.comfyDir, 'custom_nodes/comfyui-kjnodes');
    expect(await readFile(path.join(kj, 'installed-by-install-py.txt'), 'utf8')).toBe('1.1.2');
    const runs = await pod.comfyRuns();
    expect(runs).toHaveLength(1);
    expect(runs[0]!.custom_nodes).toEqual(['ComfyUI-Smart', 'comfyui-kjnodes']);

    const events = await eventually(() => {
      const types = receiver.events.map((e) => e.type);
      return types.includes('workflow.ready') && types.filter((t) => t === 'model.ready').length === 5 && types.includes('pod.ready') ? receiver.events : undefined;
    }, 15_000, 'the webhook events');
    expect(events.every((e) => e.signed)).toBe(true);
    expect(events.map((e) => e.headers['x-phoenix-event'])).toEqual(events.map((e) => e.type));
    expect(events.filter((e) => e.type === 'workflow.ready')).toHaveLength(1);
    expect(events.find((e) => e.type === 'workflow.ready')!.body).toMatchObject({ workflow: { name: 'flux', nodes: ['comfyui-kjnodes', 'ComfyUI-Smart'] } });
    const lora = events.find((e) => e.type === 'model.ready' && JSON.stringify(e.body).includes('portrait_detail'))!;
    expect(lora.body).toMatchObject({ model: { files: [{ name: 'portrait_detail.safetensors', category: 'loras' }] } });
    expect(events.map((e) => e.raw).join('\n')).not.toContain(SECRET);
    expect(events.some((e) => e.type.startsWith('comfyui.'))).toBe(false);
  });

  it('restarts ComfyUI once for node packs that arrive after it started, and says so', async () => {
    const flux = await writeWorkflow(dir, WORKFLOW_FILES.fluxDetail, hub.workflowVars, 'late-nodes.json');
    pod = await startPod(redis.socket, { ...hub.endpoints, ...webhook(), PROVISION_WORKFLOWS: flux, COMFYUI_WAIT_FOR: 'none' });
    const done = await pod.until((s) => s.workflows[0]?.ready === true, 'the workflow ready after the restart');
    expect(done.comfyui).toMatchObject({ state: 'running', restarts: 1 });
    const runs = await pod.comfyRuns();
    expect(runs).toHaveLength(2);
    expect(runs[1]!.custom_nodes).toEqual(['ComfyUI-Smart', 'comfyui-kjnodes']);
    const restarted = await eventually(() => receiver.events.find((e) => e.type === 'comfyui.restarted'), 10_000, 'comfyui.restarted');
    expect(restarted.body).toMatchObject({ comfyui: { restarts: 1, reason: 'custom nodes were installed after ComfyUI started' } });
    // Nothing more arrives: no second restart.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await pod.comfyRuns()).toHaveLength(2);
  });

  it('downloads what the smallest workflow needs first, then the larger one, then models no workflow needs', async () => {
    const cdnUrl = hub.workflowVars.CDN!;
    const single = (name: string, url: string, folder: string, loader: string) =>
      JSON.stringify({
        nodes: [{ id: 1, type: loader, properties: { cnr_id: 'comfy-core', ver: '0.3.40', models: [{ name, url, directory: folder }] }, widgets_values: [name] }],
        links: [],
        version: 0.4,
      });
    const big = path.join(dir, 'big.json');
    const small = path.join(dir, 'small.json');
    await writeFile(big, single('big-upscaler.pth', `${cdnUrl}/upscalers/4x-UltraSharp.pth`, 'upscale_models', 'UpscaleModelLoader'));
    await writeFile(small, single('flux_vae.safetensors', `${cdnUrl}/vae/flux_vae.safetensors`, 'vae', 'VAELoader'));
    const manifest = path.join(dir, 'extra.toml');
    await writeFile(manifest, `[models.text_encoders.clip]\nsource = "huggingface"\nrepo = "comfyanonymous/flux_text_encoders"\nfile = "clip_l.safetensors"\n`);
    // Slow enough that the small workflow is ready (ComfyUI does not wait here) while the big one downloads.
    hub.cdn.setFaults({ bytesPerSecond: 256 * 1024 });
    try {
      pod = await startPod(redis.socket, {
        ...hub.endpoints,
        ...webhook(),
        PROVISION_URL: manifest,
        PROVISION_WORKFLOWS: `${big},${small}`,
        DOWNLOAD_CONCURRENCY: '1',
        DOWNLOAD_CONNECTIONS: '1',
        COMFYUI_WAIT_FOR: 'none',
      });
      const done = await pod.until((s) => s.workflows.every((w) => w.ready) && s.models.every((m) => m.state === 'ready'), 'every model and workflow');
      const started = await Promise.all(
        done.models.map(async (m) => [m.name, (await pod!.queues.queue.download.getJob(jobIds.download(m.id)))!.processedOn!] as const),
      );
      expect(started.sort((a, b) => a[1] - b[1]).map(([name]) => name)).toEqual(['flux_vae.safetensors', 'big-upscaler.pth', 'clip_l.safetensors']);
      const announced = await eventually(() => {
        const names = receiver.events.filter((e) => e.type === 'workflow.ready').map((e) => (e.body.workflow as { name: string }).name);
        return names.length === 2 ? names : undefined;
      }, 10_000, 'both workflows announced');
      expect(announced).toEqual(['small', 'big']);
    } finally {
      hub.cdn.setFaults({ bytesPerSecond: 4 * 1024 * 1024 });
    }
  });

  it('fails what cannot be provided alone (a pinned file whose bytes differ, registry nodes it lacks), saying what to do', async () => {
    const wrongPin = '0'.repeat(64);
    const text = (await renderWorkflow(WORKFLOW_FILES.fluxDetail, { ...hub.workflowVars, VAE_SHA256: wrongPin })).replace('"ver": "1.1.2"', '"ver": "9.9.9"');
    const wf = JSON.parse(text) as { nodes: unknown[] };
    wf.nodes.push(
      { id: 70, type: 'GhostNode', properties: { cnr_id: 'comfyui-ghost', ver: '1.0.0' }, widgets_values: [] },
      { id: 12, type: 'LoraLoader', properties: { cnr_id: 'comfy-core', ver: '0.3.40' }, widgets_values: ['detail-slider.safetensors', 1, 1] },
    );
    const file = path.join(dir, 'broken-nodes.json');
    await writeFile(file, JSON.stringify(wf));
    pod = await startPod(redis.socket, { ...hub.endpoints, ...webhook(), PROVISION_WORKFLOWS: file });
    const s = await pod.until((st) => st.ready && st.nodes.every((n) => n.state === 'installed' || n.state === 'failed'), 'ComfyUI up');
    const byName = Object.fromEntries(s.nodes.map((n) => [n.name, n]));
    expect(byName['comfyui-kjnodes']).toMatchObject({ state: 'failed' });
    expect(byName['comfyui-kjnodes']!.error).toBe(
      `Comfy Registry has no version 9.9.9 of comfyui-kjnodes (the newest is 1.1.2): pin a version it lists at https://registry.comfy.org/nodes/comfyui-kjnodes`,
    );
    expect(byName['comfyui-ghost']!.error).toBe('Comfy Registry has no node "comfyui-ghost": check the id (the workflow\'s cnr_id) at https://registry.comfy.org');
    expect(byName['ComfyUI-Smart']).toMatchObject({ state: 'installed', commit: hub.smartCommit });

    const vae = s.models.find((m) => m.origin.includes('VAELoader'))!;
    const actual = hub.cdn.sha256('/vae/flux_vae.safetensors');
    expect(vae).toMatchObject({ state: 'failed', path: null });
    expect(vae.error).toMatch(new RegExp(`sha256 of .* is ${actual}, expected ${wrongPin}: data discarded`));
    expect(s.models.filter((m) => m !== vae).every((m) => m.state === 'ready')).toBe(true);

    const w = s.workflows[0]!;
    expect(w.ready).toBe(false);
    expect(w.failed).toEqual([vae.id, 'comfyui-ghost', 'comfyui-kjnodes']);
    expect(w.missing.map((m) => m.message)).toEqual([
      'LoraLoader #12 needs `detail-slider.safetensors` in loras — add a source (a model with a url in the workflow, the manifest, or CIVITAI_MODELS / HUGGINGFACE_MODELS)',
    ]);
    const failed = await eventually(() => receiver.events.find((e) => e.type === 'model.failed'), 10_000, 'model.failed');
    expect(failed.body).toMatchObject({ model: { id: vae.id }, error: expect.stringContaining(`expected ${wrongPin}`) });
    expect(receiver.events.some((e) => e.type === 'workflow.ready')).toBe(false);
  });
});
