import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { up } from '../../src/runtime/up.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { comfyPorts, eventually, freePort, makeWorkspace, silentLog, testConfig, writeManifest, type Workspace } from '../helpers.js';

/** PARANOID_MODE: on exit, nothing that tells what the pod fetched or ran is left, but the models. */
describe('PARANOID_MODE', () => {
  let hub: StaticServer;
  let ws: Workspace;
  // A download that never ends: a few bytes, then nothing, so its job is still running at the stop.
  let stall: Server;
  let stallUrl: string;

  beforeAll(async () => {
    hub = await startStaticServer({ '/m/a.safetensors': { body: randomBytes(300_000) } });
    ws = await makeWorkspace();
    stall = createServer((req, res) => {
      // Answers the range asked for, as a server honouring Range does, then sends 1 KiB of it and stops.
      const [, from, to] = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') ?? [];
      const start = Number(from ?? 0);
      const end = to ? Math.min(Number(to), 99_999_999) : 99_999_999;
      res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-range': `bytes ${start}-${end}/100000000`, 'content-length': end - start + 1 });
      if (end === start) res.end(Buffer.alloc(1));
      else res.write(Buffer.alloc(1024));
    });
    await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
    stallUrl = `http://127.0.0.1:${(stall.address() as AddressInfo).port}/m/stall.safetensors`;
  });
  afterAll(async () => {
    stall.closeAllConnections();
    stall.close();
    await hub.close();
    await ws.cleanup();
  });

  it('removes queue state, partial downloads, caches and histories on exit, and keeps the models', { timeout: 120_000 }, async () => {
    const home = path.join(ws.dir, 'home');
    await mkdir(path.join(home, '.cache/pip'), { recursive: true });
    await mkdir(path.join(home, '.cache/huggingface'), { recursive: true });
    await writeFile(path.join(home, '.cache/huggingface/token'), 'hf_cached_token');
    await writeFile(path.join(home, '.bash_history'), 'export HF_TOKEN=hf_typed_token\n');
    await writeFile(path.join(home, '.profile'), '# kept\n');
    const volume = path.join(ws.dir, 'volume');
    const config = await testConfig({
      WORKSPACE: ws.dir,
      HOME: home,
      PARANOID_MODE: 'true',
      PERSISTENT_STORAGE: volume,
      PHOENIX_PORT: String(await freePort()),
      ...(await comfyPorts()),
      PHOENIX_PASSWORD: 'paranoid-password',
      COMFYUI_WAIT_FOR: 'nodes',
      PROVISION_URL: await writeManifest(`[models.loras]\na = "${hub.url('/m/a.safetensors')}"\nstall = "${stallUrl}"\n`),
    });
    const stack = await up(config, silentLog, { prefix: `para${process.pid}` });
    const auth = { authorization: `Basic ${Buffer.from('admin:paranoid-password').toString('base64')}` };
    const s = await eventually(async () => {
      const s = (await (await fetch(`${stack.board.url}/status`, { headers: auth })).json()) as PodStatus;
      return s.ready && s.models.some((m) => m.state === 'ready') && s.models.some((m) => m.state === 'downloading') ? s : undefined;
    }, 60_000, 'ready, with one model published and one downloading');
    const added = await fetch(`${stack.board.url}/api/models`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'url', url: hub.url('/m/a.safetensors'), category: 'vae' }),
    });
    expect(added.status).toBe(202);
    expect(existsSync(path.join(ws.dir, '.phoenix/runtime-additions.json'))).toBe(true);
    await mkdir(path.join(volume, 'models/.phoenix-tmp'), { recursive: true });
    await writeFile(path.join(volume, 'models/.phoenix-tmp/x--b.safetensors.part'), 'partial');
    expect(existsSync(path.join(ws.dir, '.phoenix/appendonlydir'))).toBe(true);

    // Docker sends SIGKILL 10 s after SIGTERM: everything, the cleanup included, must be done by then,
    // even with a download still running.
    expect(s.models.find((m) => m.name.includes('stall'))?.state).toBe('downloading');
    const stopping = Date.now();
    await stack.stop();
    const stopMs = Date.now() - stopping;
    console.log(`PARANOID_MODE stop with a download running: ${stopMs} ms`);
    expect(stopMs).toBeLessThan(10_000);

    expect(existsSync(path.join(ws.dir, '.phoenix/appendonlydir'))).toBe(false);
    expect(existsSync(path.join(ws.dir, '.phoenix/runtime-additions.json'))).toBe(false);
    expect(existsSync(path.join(volume, 'models/.phoenix-tmp'))).toBe(false);
    expect(existsSync(path.join(home, '.cache/huggingface'))).toBe(false);
    expect(existsSync(path.join(home, '.cache/pip'))).toBe(false);
    expect(existsSync(path.join(home, '.bash_history'))).toBe(false);
    expect(existsSync(path.join(home, '.profile'))).toBe(true);
    expect(existsSync(path.join(volume, 'models/loras/a.safetensors'))).toBe(true);
    expect(existsSync(path.join(volume, 'models/.phoenix-verified.json'))).toBe(true);
  });
});
