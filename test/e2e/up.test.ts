import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUp as startUpProcess } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { comfyPorts, eventually, freePort, isAlive, makeWorkspace, type Workspace } from '../helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SECRETS = {
  HF_TOKEN: 'hf_e2eTokenValue0123456789',
  CIVITAI_TOKEN: 'civitai-e2e-token-abcdef',
  PHOENIX_PASSWORD: 'e2e-board-password',
};
const HEADER_SECRET = 'Bearer manifest-header-secret-42';

interface Status {
  ready: boolean;
  comfyui: { state: string; pid: number | null; restarts: number };
  models: { name: string; category: string; state: string; path: string | null; sha256: string | null; error: string | null }[];
}

/** `phoenix up` as a user runs it: one process tree, a local hub, the stand-in ComfyUI. */
describe('phoenix up', () => {
  let hub: StaticServer;
  let ws: Workspace;
  let env: Record<string, string>;
  let phoenixPort: number;
  const checkpoint = randomBytes(3_000_000);
  const vae = randomBytes(200_000);
  const later = randomBytes(100_000);
  const auth = { authorization: `Basic ${Buffer.from(`admin:${SECRETS.PHOENIX_PASSWORD}`).toString('base64')}` };

  beforeAll(async () => {
    hub = await startStaticServer({
      '/files/flux-test.safetensors': { body: checkpoint },
      '/private/vae': { body: vae, filename: 'ae.safetensors', authorization: HEADER_SECRET },
      '/files/later.safetensors': { body: later },
    });
    ws = await makeWorkspace();
    const manifest = path.join(ws.dir, 'models.toml');
    await writeFile(
      manifest,
      `[models.checkpoints.flux]
source = "url"
url = "${hub.url('/files/flux-test.safetensors')}"
sha256 = "${sha(checkpoint)}"

[models.vae.ae]
source = "url"
url = "${hub.url('/private/vae')}"
headers = { "Authorization" = "${HEADER_SECRET}" }
`,
    );
    phoenixPort = await freePort();
    env = {
      PATH: process.env.PATH ?? '',
      HOME: ws.dir,
      WORKSPACE: ws.dir,
      PHOENIX_PORT: String(phoenixPort),
      ...(await comfyPorts()),
      PROVISION_URL: manifest,
      ...SECRETS,
    };
  });
  afterAll(async () => {
    await hub.close();
    await ws.cleanup();
  });

  const startUp = () => startUpProcess(env, SECRETS.PHOENIX_PASSWORD);

  const status = async (): Promise<Status> => (await fetch(`http://127.0.0.1:${phoenixPort}/status`, { headers: auth })).json() as Promise<Status>;
  const standinRuns = async () =>
    (await readFile(path.join(ws.comfyDir, 'standin-runs.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { pid: number; env: Record<string, string>; started: number });

  it('provisions, serves, takes runtime additions, restarts warm and stops cleanly', { timeout: 180_000 }, async () => {
    const first = startUp();
    const ready = await eventually(async () => {
      const s = await status();
      return s.ready ? s : undefined;
    }, 60_000, 'ready: true').catch((err: Error) => {
      throw new Error(`${err.message}\n--- phoenix output ---\n${first.output().slice(-3000)}`);
    });

    // ComfyUI answers on its public port through the login only.
    expect((await fetch(`http://127.0.0.1:${env.COMFYUI_PORT}/system_stats`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${env.COMFYUI_PORT}/system_stats`, { headers: auth })).status).toBe(200);

    // Every model verified in its folder before ComfyUI started.
    expect(ready.models.map((m) => [m.name, m.category, m.state]).sort()).toEqual([
      ['ae.safetensors', 'vae', 'ready'],
      ['flux-test.safetensors', 'checkpoints', 'ready'],
    ]);
    const flux = ready.models.find((m) => m.name === 'flux-test.safetensors')!;
    expect(flux.sha256).toBe(sha(checkpoint));
    expect(sha(await readFile(flux.path!))).toBe(sha(checkpoint));
    const runs = await standinRuns();
    expect(runs).toHaveLength(1);
    const published = await Promise.all(ready.models.map((m) => stat(m.path!)));
    expect(runs[0]!.started * 1000).toBeGreaterThan(Math.max(...published.map((s) => s.mtimeMs)));

    // ComfyUI got no secret; the header went to the hub.
    const comfyEnv = JSON.stringify(runs[0]!.env);
    for (const secret of [...Object.values(SECRETS), HEADER_SECRET]) expect(comfyEnv).not.toContain(secret);
    expect(hub.requests.some((r) => r.path === '/private/vae' && r.headers.authorization === HEADER_SECRET)).toBe(true);
    expect(hub.requests.filter((r) => r.path !== '/private/vae').every((r) => r.headers.authorization === undefined)).toBe(true);

    // A model added at runtime lands without a ComfyUI restart.
    const add = await fetch(`http://127.0.0.1:${phoenixPort}/api/models`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'url', url: hub.url('/files/later.safetensors'), category: 'loras' }),
    });
    expect(add.status).toBe(202);
    await eventually(async () => (await status()).models.find((m) => m.name === 'later.safetensors' && m.state === 'ready'), 30_000, 'runtime model');
    expect(existsSync(path.join(ws.comfyDir, 'models/loras/later.safetensors'))).toBe(true);
    const afterAdd = await status();
    expect(afterAdd.comfyui).toMatchObject({ state: 'running', pid: ready.comfyui.pid, restarts: 0 });
    expect(await standinRuns()).toHaveLength(1);

    // No secret in Redis, in the logs, or on disk.
    const redis = new Redis({ path: path.join(ws.dir, '.phoenix/redis.sock') });
    const dump: string[] = [];
    for (const key of await redis.keys('*')) {
      const type = await redis.type(key);
      dump.push(key);
      if (type === 'string') dump.push((await redis.get(key)) ?? '');
      else if (type === 'hash') dump.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') dump.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'zset') dump.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
      else if (type === 'set') dump.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'stream') dump.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
    redis.disconnect();
    expect(dump.length).toBeGreaterThan(20);
    const diskFiles = await listFiles(ws.dir);
    const onDisk = (await Promise.all(diskFiles.filter((f) => !f.endsWith('.safetensors') && !f.endsWith('.toml')).map((f) => readFile(f, 'latin1')))).join('\n');
    for (const secret of [...Object.values(SECRETS), HEADER_SECRET, 'manifest-header-secret-42']) {
      expect(dump.join('\n')).not.toContain(secret);
      expect(first.output()).not.toContain(secret);
      expect(onDisk).not.toContain(secret);
    }

    // SIGTERM stops the board, the workers, ComfyUI and Redis.
    const comfyPid = afterAdd.comfyui.pid!;
    first.child.kill('SIGTERM');
    const result = await first.child;
    expect(result.exitCode).toBe(0);
    expect(isAlive(comfyPid)).toBe(false);
    expect(existsSync(path.join(ws.dir, '.phoenix/redis.sock'))).toBe(false);
    await expect(fetch(`http://127.0.0.1:${phoenixPort}/healthz`)).rejects.toThrow();
    const redisLeft = await execa('pgrep', ['-f', `${ws.dir}/.phoenix/redis.sock`], { reject: false });
    expect(redisLeft.stdout.trim()).toBe('');

    // A second start downloads nothing and brings ComfyUI up again; the model added at runtime
    // is remembered (the embedded Redis kept nothing) and found verified on disk.
    const served = hub.requests.length;
    const second = startUp();
    const again = await eventually(async () => {
      const s = await status().catch(() => undefined);
      return s?.ready && s.models.length === 3 && s.models.every((m) => m.state === 'ready') ? s : undefined;
    }, 60_000, 'ready after restart');
    expect(again.models.map((m) => m.name).sort()).toEqual(['ae.safetensors', 'flux-test.safetensors', 'later.safetensors']);
    expect(hub.requests.length).toBe(served);
    second.child.kill('SIGTERM');
    expect((await second.child).exitCode).toBe(0);
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}
