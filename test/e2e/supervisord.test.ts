import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { REPO_ROOT, eventually, freePort, isAlive, makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

/**
 * The image's process model: Debian's supervisord runs supervisord.conf as shipped (paths come
 * from the environment), with `phoenix` on PATH, and the stand-in ComfyUI comes up.
 */
describe('supervisord.conf', () => {
  let hub: StaticServer;
  let ws: Workspace;
  const model = randomBytes(500_000);

  beforeAll(async () => {
    hub = await startStaticServer({ '/m/sd.safetensors': { body: model } });
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await hub.close();
    await ws.cleanup();
  });

  it('brings up Redis, the board, the workers and ComfyUI, and stops them all on SIGTERM', { timeout: 120_000 }, async () => {
    const bin = path.join(ws.dir, 'bin');
    await mkdir(bin);
    await writeFile(path.join(bin, 'phoenix'), `#!/bin/sh\nexec node --import tsx ${path.join(REPO_ROOT, 'src/cli.ts')} "$@"\n`);
    await chmod(path.join(bin, 'phoenix'), 0o755);
    await mkdir(path.join(ws.dir, '.phoenix'), { mode: 0o700 });
    const port = await freePort();
    const comfyPort = await freePort();
    const logFile = path.join(ws.dir, 'supervisord.log');
    const logFd = openSync(logFile, 'a');
    const password = 'supervised-password';
    // A file descriptor, not a pipe: Node's pipes are sockets, which /dev/stdout cannot be reopened on.
    const supervisord = spawn('supervisord', ['-c', path.join(REPO_ROOT, 'supervisord.conf')], {
      cwd: REPO_ROOT,
      env: {
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        HOME: ws.dir,
        WORKSPACE: ws.dir,
        PHOENIX_PORT: String(port),
        PHOENIX_PASSWORD: password,
        COMFYUI_PORT: String(comfyPort),
        PROVISION_URL: await writeManifest(`[models.checkpoints]\nsd = "${hub.url('/m/sd.safetensors')}"\n`, ws.dir),
      },
      stdio: ['ignore', logFd, logFd],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      supervisord.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const output = () => readFile(logFile, 'utf8').catch(() => '');

    const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` };
    const status = await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/status`, { headers: auth });
      const body = (await res.json()) as { ready: boolean; comfyui: { pid: number }; models: { state: string; path: string }[] };
      return body.ready ? body : undefined;
    }, 90_000, 'ready under supervisord').catch(async (err: Error) => {
      throw new Error(`${err.message}\n${(await output()).slice(-3000)}`);
    });
    expect(status.models).toMatchObject([{ state: 'ready' }]);
    expect(createHash('sha256').update(await readFile(status.models[0]!.path)).digest('hex')).toBe(
      createHash('sha256').update(model).digest('hex'),
    );

    // ComfyUI's port is the board program's login proxy in front of ComfyUI on 127.0.0.1.
    expect((await fetch(`http://127.0.0.1:${comfyPort}/system_stats`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${comfyPort}/system_stats`, { headers: auth })).status).toBe(200);

    const programs = await execa('supervisorctl', ['-c', path.join(REPO_ROOT, 'supervisord.conf'), 'status'], {
      env: { WORKSPACE: ws.dir },
      reject: false,
    });
    expect(programs.stdout).toMatch(/redis\s+RUNNING/);
    expect(programs.stdout).toMatch(/board\s+RUNNING/);
    expect(programs.stdout).toMatch(/workers\s+RUNNING/);
    expect(programs.stdout).toMatch(/produce\s+EXITED/);

    supervisord.kill('SIGTERM');
    const result = await exited;
    closeSync(logFd);
    expect(result, (await output()).slice(-2000)).toEqual({ code: 0, signal: null });
    expect(isAlive(status.comfyui.pid)).toBe(false);
    const left = await execa('pgrep', ['-f', ws.dir], { reject: false });
    expect(left.stdout.trim()).toBe('');
  });
});
