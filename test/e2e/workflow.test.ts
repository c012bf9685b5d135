import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { startFixtureHub, type FixtureHub } from '../fixtures/hub.js';
import { writeWorkflow, WORKFLOW_FILES } from '../fixtures/workflows.js';
import { REPO_ROOT, eventually, freePort, makeWorkspace, type Workspace } from '../helpers.js';

const PASSWORD = 'e2e-workflow-password';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * `phoenix up` given nothing but a workflow file (and the stand-ins' origins in place of the
 * public services): every model the workflow lists verified in its folder, every custom node at
 * the version or commit it pins, ComfyUI started once with them loaded.
 */
describe('phoenix up from a workflow alone', () => {
  let hub: FixtureHub;
  let ws: Workspace;
  let env: Record<string, string>;
  let phoenixPort: number;
  let comfyPort: number;
  const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };

  beforeAll(async () => {
    hub = await startFixtureHub({ bigFileBytes: 1024 * 1024 });
    ws = await makeWorkspace();
    const workflow = await writeWorkflow(ws.dir, WORKFLOW_FILES.fluxDetail, hub.workflowVars, 'flux-detail.json');
    phoenixPort = await freePort();
    comfyPort = await freePort();
    env = {
      PATH: process.env.PATH ?? '',
      HOME: ws.dir,
      WORKSPACE: ws.dir,
      PHOENIX_PORT: String(phoenixPort),
      COMFYUI_PORT: String(comfyPort),
      COMFYUI_INTERNAL_PORT: String(await freePort()),
      PHOENIX_PASSWORD: PASSWORD,
      ...hub.endpoints,
      PROVISION_WORKFLOWS: workflow,
    };
  });
  afterAll(async () => {
    await hub.close();
    await ws.cleanup();
  });

  function startUp(): { child: ResultPromise; output: () => string } {
    const child = execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), 'up'], { cwd: REPO_ROOT, env, extendEnv: false, all: true, reject: false });
    let out = '';
    child.all?.on('data', (d: Buffer) => (out += d.toString()));
    return { child, output: () => out };
  }
  const status = async (): Promise<PodStatus> => (await fetch(`http://127.0.0.1:${phoenixPort}/status`, { headers: auth })).json() as Promise<PodStatus>;
  const whenReady = (up: { output: () => string }, what: string) =>
    eventually(async () => {
      const s = await status().catch(() => undefined);
      return s?.ready && s.workflows[0]?.ready ? s : undefined;
    }, 90_000, what).catch((err: Error) => {
      throw new Error(`${err.message}\n--- phoenix output ---\n${up.output().slice(-3000)}`);
    });

  it('brings the pod to ready with every model verified and every node at its pinned version', { timeout: 240_000 }, async () => {
    const first = startUp();
    const ready = await whenReady(first, 'the workflow ready');

    expect(ready.models).toHaveLength(5);
    for (const m of ready.models) {
      expect(m.state).toBe('ready');
      expect(sha(await readFile(m.path!))).toBe(m.sha256);
    }
    expect(ready.models.find((m) => m.name === 'flux_vae.safetensors')!.sha256).toBe(hub.workflowVars.VAE_SHA256);
    expect(ready.models.map((m) => path.relative(ws.comfyDir, m.path!)).sort()).toEqual([
      'models/diffusion_models/flux1-demo_fp8.safetensors',
      'models/loras/portrait_detail.safetensors',
      'models/text_encoders/clip_l.safetensors',
      'models/text_encoders/t5xxl_fp8_e4m3fn.safetensors',
      'models/vae/flux_vae.safetensors',
    ]);

    expect(ready.nodes).toMatchObject([
      { name: 'comfyui-kjnodes', source: 'registry', version: '1.1.2', state: 'installed' },
      { name: 'ComfyUI-Smart', source: 'git', commit: hub.smartCommit, state: 'installed' },
    ]);
    const checkout = await execa('git', ['rev-parse', 'HEAD'], { cwd: path.join(ws.comfyDir, 'custom_nodes/ComfyUI-Smart') });
    expect(checkout.stdout).toBe(hub.smartCommit);
    expect(ready.workflows).toMatchObject([{ name: 'flux-detail', ready: true, missing: [], failed: [] }]);

    // ComfyUI started once, after everything, and knows the workflow's node types.
    expect(ready.comfyui.restarts).toBe(0);
    const runs = (await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8')).trim().split('\n');
    expect(runs).toHaveLength(1);
    const types = Object.keys((await (await fetch(`http://127.0.0.1:${comfyPort}/object_info`, { headers: auth })).json()) as object);
    expect(types).toEqual(expect.arrayContaining(['ImageResizeKJv2', 'SmartSharpen', 'UNETLoader']));
    expect(types).not.toContain('SmartBlur');

    first.child.kill('SIGTERM');
    expect((await first.child).exitCode).toBe(0);

    // A second start on the same workspace downloads nothing, models and node zips alike.
    const zips = hub.registry.zipRequests('comfyui-kjnodes', '1.1.2');
    const cdnBytes = hub.cdn.bytesServed;
    const second = startUp();
    const again = await whenReady(second, 'ready again');
    expect(again.nodes.map((n) => n.state)).toEqual(['installed', 'installed']);
    expect(hub.registry.zipRequests('comfyui-kjnodes', '1.1.2')).toBe(zips);
    expect(hub.cdn.bytesServed).toBe(cdnBytes);
    second.child.kill('SIGTERM');
    expect((await second.child).exitCode).toBe(0);
  });
});
