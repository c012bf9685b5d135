import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { comfyPids, pidIn, sha256File } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { REPO_ROOT, eventually, freePort, isAlive, makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const BIG = 12 * 1024 * 1024;

/**
 * The image's process model: Debian's supervisord runs supervisord.conf as shipped (paths come
 * from the environment), with `phoenix` on PATH, and the stand-in ComfyUI comes up. Each of
 * redis-server, the workers and the board killed with SIGKILL leads back to ready, with one
 * ComfyUI and nothing fetched twice.
 */
describe('supervisord.conf', () => {
  let hub: StaticServer;
  let cdn: CdnFixture;
  let ws: Workspace;
  const model = randomBytes(500_000);

  beforeAll(async () => {
    hub = await startStaticServer({ '/m/sd.safetensors': { body: model } });
    cdn = await startCdnFixture({ files: { '/big.safetensors': BIG }, faults: { bytesPerSecond: 512 * 1024 } });
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await hub.close();
    await cdn.close();
    await ws.cleanup();
  });

  it('brings up Redis, the board, the workers and ComfyUI, comes back from each killed, and stops them all on SIGTERM', { timeout: 180_000 }, async () => {
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
        COMFYUI_INTERNAL_PORT: String(await freePort()),
        COMFYUI_WAIT_FOR: 'none',
        DOWNLOAD_CONNECTIONS: '4',
        PROVISION_URL: await writeManifest(
          `[models.checkpoints]\nsd = "${hub.url('/m/sd.safetensors')}"\nbig = "${cdn.url('/big.safetensors')}"\n`,
          ws.dir,
        ),
      },
      stdio: ['ignore', logFd, logFd],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      supervisord.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const output = () => readFile(logFile, 'utf8').catch(() => '');

    const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` };
    const until = (check: (s: PodStatus) => boolean, what: string) =>
      eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/status`, { headers: auth });
        const body = (await res.json()) as PodStatus;
        return res.status === 200 && check(body) ? body : undefined;
      }, 90_000, what).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${(await output()).slice(-3000)}`);
      });
    const allReady = (s: PodStatus) => s.ready && s.models.length === 2 && s.models.every((m) => m.state === 'ready');
    const conf = path.join(REPO_ROOT, 'supervisord.conf');
    const programPid = async (name: string) =>
      Number((await execa('supervisorctl', ['-c', conf, 'pid', name], { env: { WORKSPACE: ws.dir } })).stdout.trim());

    // The workers killed mid-download, with ComfyUI (their child) running: the new workers stop
    // the ComfyUI left behind, start one, and take the download up where it stopped.
    const workersPid = await until((s) => s.ready, 'ComfyUI up').then(() => programPid('workers'));
    const downloading = await until((s) => s.models.some((m) => m.state === 'downloading' && m.bytesDone > BIG / 4), 'a quarter of the big model');
    const orphan = downloading.comfyui.pid!;
    const atKill = cdn.bytesServed;
    let killedAt = Date.now();
    process.kill(workersPid, 'SIGKILL');
    const afterWorkers = await until((s) => allReady(s) && s.comfyui.pid !== orphan, 'ready after the workers were killed');
    const recovery = { workers: (Date.now() - killedAt) / 1000, redis: 0, board: 0 };
    expect(isAlive(orphan)).toBe(false);
    expect(await comfyPids(ws.comfyDir)).toEqual([afterWorkers.comfyui.pid]);
    expect(cdn.bytesServed - atKill).toBeLessThanOrEqual(1.35 * (BIG - atKill));
    const big = afterWorkers.models.find((m) => m.name === 'big.safetensors')!;
    expect(await sha256File(big.path!)).toBe(cdn.sha256('/big.safetensors'));
    const sd = afterWorkers.models.find((m) => m.name === 'sd.safetensors')!;
    expect(await sha256File(sd.path!)).toBe(createHash('sha256').update(model).digest('hex'));

    // redis-server killed: supervisord starts it again, empty; the workers provision from disk.
    const served = cdn.bytesServed + [...hub.served.values()].reduce((a, b) => a + b, 0);
    killedAt = Date.now();
    process.kill(await pidIn(ws.dir, 'redis-server.pid'), 'SIGKILL');
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/status`, { headers: auth })).status === 503, 10_000, 'a 503 while Redis is away');
    const afterRedis = await until(allReady, 'ready after redis-server was killed');
    recovery.redis = (Date.now() - killedAt) / 1000;
    expect(afterRedis.comfyui.pid).toBe(afterWorkers.comfyui.pid);
    expect(await comfyPids(ws.comfyDir)).toEqual([afterWorkers.comfyui.pid]);
    expect(cdn.bytesServed + [...hub.served.values()].reduce((a, b) => a + b, 0)).toBe(served);

    // The board killed: supervisord starts it again.
    killedAt = Date.now();
    process.kill(await programPid('board'), 'SIGKILL');
    const status = await until(allReady, 'ready after the board was killed');
    recovery.board = (Date.now() - killedAt) / 1000;
    expect(await comfyPids(ws.comfyDir)).toEqual([afterWorkers.comfyui.pid]);
    console.log(
      `supervisord: ready again ${recovery.workers.toFixed(1)} s after the workers were killed (big model fetched again ${cdn.bytesServed - atKill} of ${BIG - atKill} missing bytes), ` +
        `${recovery.redis.toFixed(1)} s after redis-server (nothing fetched), ${recovery.board.toFixed(1)} s after the board`,
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
    expect(isAlive(status.comfyui.pid!)).toBe(false);
    const left = await execa('pgrep', ['-f', ws.dir], { reject: false });
    expect(left.stdout.trim()).toBe('');
  });
});
