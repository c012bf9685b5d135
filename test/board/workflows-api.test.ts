import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBoard, type RunningBoard } from '../../src/board/server.js';
import { startFixtureHub, type FixtureHub } from '../fixtures/hub.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { renderWorkflow, WORKFLOW_FILES } from '../fixtures/workflows.js';
import { silentLog } from '../helpers.js';
import { startPod, type Pod } from '../workflows/harness.js';

const PASSWORD = 'workflows-api-password';
const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };

/** POST /api/workflows on a running pod: refused input enqueues nothing; a workflow arrives whole. */
describe('POST /api/workflows', () => {
  let redis: TestRedis;
  let hub: FixtureHub;
  let pod: Pod;
  let board: RunningBoard;
  let dir: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    hub = await startFixtureHub({ bigFileBytes: 1024 * 1024 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-wfapi-'));
    pod = await startPod(redis.socket, { ...hub.endpoints, PHOENIX_PASSWORD: PASSWORD });
    board = await startBoard({ config: pod.config, queues: pod.queues, pod: pod.pod, log: silentLog, port: 0, comfyPort: 0, host: '127.0.0.1' });
    await pod.until((s) => s.ready, 'an empty pod ready');
  });
  afterAll(async () => {
    await board.close();
    await pod.stop();
    await Promise.all([redis.stop(), hub.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  const post = (body: string, name?: string) =>
    fetch(`${board.url}/api/workflows${name !== undefined ? `?name=${encodeURIComponent(name)}` : ''}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body,
    });

  it('refuses what is not a workflow, with every problem and nothing enqueued', async () => {
    const cases: [string, string | undefined, RegExp][] = [
      ['{"nodes": [', 'x', /^body: not valid JSON: /],
      ['{"theme": "dark"}', 'x', /^body: is not a ComfyUI workflow: expected the UI format/],
      [await renderWorkflow(WORKFLOW_FILES.sdxlFacefix), '../etc', /^name: "\.\.\/etc" must be 1–100 letters/],
      [(await renderWorkflow(WORKFLOW_FILES.fluxDetail, hub.workflowVars)).replace('"directory": "vae"', '"directory": "nowhere"'), 'bad', /model flux_vae\.safetensors: directory "nowhere" is not a ComfyUI model folder$/],
    ];
    for (const [body, name, problem] of cases) {
      const res = await post(body, name);
      expect(res.status, body.slice(0, 40)).toBe(400);
      const answer = (await res.json()) as { error: string; problems: string[] };
      expect(answer.error).toBe('invalid workflow');
      expect(answer.problems).toEqual([expect.stringMatching(problem)]);
    }
    expect(await pod.queues.queue.download.count()).toBe(0);
    expect(await pod.queues.queue.nodes.count()).toBe(0);
    expect((await pod.status()).workflows).toEqual([]);
    const noAuth = await fetch(`${board.url}/api/workflows`, { method: 'POST', body: '{}' });
    expect(noAuth.status).toBe(401);
  });

  it('enqueues a workflow\'s models and nodes at runtime; ComfyUI restarts once to load the nodes', async () => {
    const before = await pod.status();
    const res = await post(await renderWorkflow(WORKFLOW_FILES.fluxDetail, hub.workflowVars), 'flux');
    expect(res.status).toBe(202);
    const { workflow } = (await res.json()) as { workflow: { name: string; models: { status: string }[]; nodes: { name: string; status: string }[]; ready: boolean } };
    expect(workflow.name).toBe('flux');
    expect(workflow.models.map((m) => m.status)).toEqual(['queued', 'queued', 'queued', 'queued', 'queued']);
    expect(workflow.nodes).toMatchObject([
      { name: 'comfyui-kjnodes', status: 'queued' },
      { name: 'ComfyUI-Smart', status: 'queued' },
    ]);
    expect(workflow.ready).toBe(false);

    const ready = await pod.until((s) => s.workflows.find((w) => w.name === 'flux')?.ready === true, 'the runtime workflow ready');
    expect(ready.workflows[0]).toMatchObject({ name: 'flux', origin: 'api', missing: [], failed: [] });
    expect(ready.comfyui.restarts).toBe(before.comfyui.restarts + 1);
    expect((await pod.comfyRuns()).at(-1)!.custom_nodes).toEqual(['ComfyUI-Smart', 'comfyui-kjnodes']);

    // The same workflow again adds nothing and restarts nothing.
    const again = (await (await post(await renderWorkflow(WORKFLOW_FILES.fluxDetail, hub.workflowVars), 'flux')).json()) as {
      workflow: { models: { status: string }[]; nodes: { status: string }[]; ready: boolean };
    };
    expect(again.workflow.models.every((m) => m.status === 'exists')).toBe(true);
    expect(again.workflow.nodes.every((n) => n.status === 'exists')).toBe(true);
    expect(again.workflow.ready).toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await pod.status()).comfyui.restarts).toBe(before.comfyui.restarts + 1);
  });

  it('answers what an API-format workflow misses, its unknown node types checked against the running ComfyUI', async () => {
    const res = await post(await renderWorkflow(WORKFLOW_FILES.sdxlFacefix), 'facefix');
    expect(res.status).toBe(202);
    const { workflow } = (await res.json()) as { workflow: { ready: boolean; missing: { kind: string; node: string; type?: string }[] } };
    expect(workflow.ready).toBe(false);
    expect(workflow.missing.map((m) => [m.kind, m.type ?? m.node])).toEqual([
      ['model', 'CheckpointLoaderSimple #4'],
      ['model', 'LoraLoader #10'],
      ['model', 'LoraLoaderModelOnly #11'],
      ['node', 'FaceDetailer'],
      ['node', 'UltralyticsDetectorProvider'],
    ]);
  });
});
