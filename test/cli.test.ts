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
});
