import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { filebrowserDatabase, runFileBrowser } from '../../src/commands/filebrowser.js';
import { createLogger } from '../../src/lib/log.js';
import { REPO_ROOT, eventually, freePort, testConfig } from '../helpers.js';

const STANDIN_DIR = path.join(REPO_ROOT, 'test/fixtures/filebrowser');

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

/** `phoenix filebrowser` against the stand-in binary, which records every argv it gets. */
describe('phoenix filebrowser', () => {
  let workspace: string;
  let argvLog: string;

  beforeEach(async () => {
    workspace = await mkdtemp(path.join(os.tmpdir(), 'phoenix-fb-'));
    argvLog = path.join(workspace, 'standin-argv.jsonl');
  });
  afterEach(() => rm(workspace, { recursive: true, force: true }));

  async function start(env: Record<string, string>) {
    const port = await freePort();
    const config = await testConfig({
      WORKSPACE: workspace,
      FILEBROWSER_PORT: String(port),
      FILEBROWSER_STANDIN_LOG: argvLog,
      PATH: `${STANDIN_DIR}${path.delimiter}${process.env.PATH ?? ''}`,
      ...env,
    });
    const out = capture();
    const logs = capture();
    const signals = new EventEmitter();
    const log = createLogger({ secrets: config.secrets, debug: false, destination: logs.stream });
    const code = runFileBrowser(config, { log, out: out.stream, signals });
    const base = `http://127.0.0.1:${port}`;
    await eventually(async () => (await fetch(`${base}/health`)).ok, 15_000, 'filebrowser /health');
    const login = (username: string, password: string) =>
      fetch(`${base}/api/login`, { method: 'POST', body: JSON.stringify({ username, password }) }).then((r) => r.status);
    return { config, out, logs, signals, code, base, login };
  }

  const argvs = async (): Promise<string[][]> =>
    (await readFile(argvLog, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string[]);

  it('sets up a fresh database non-interactively, serves /health and prints a generated password once', async () => {
    const fb = await start({});
    const db = filebrowserDatabase(fb.config);
    expect(db).toBe(path.join(workspace, '.phoenix', 'filebrowser.db'));
    const { port, username, password } = fb.config.filebrowser;
    expect(await argvs()).toEqual([
      ['version'],
      ['config', 'init', '-d', db],
      ['config', 'set', '-d', db, '--address', '0.0.0.0', '--port', String(port), '--root', workspace],
      ['users', 'add', username, password, '--perm.admin', '-d', db],
      ['-d', db],
    ]);
    expect(await (await fetch(`${fb.base}/health`)).json()).toEqual({ status: 'OK' });
    expect(await fb.login('admin', password)).toBe(200);
    expect(fb.out.text().split(password).length - 1).toBe(1);
    expect(fb.logs.text()).toContain('filebrowser started');
    expect(fb.logs.text()).not.toContain(password);

    fb.signals.emit('SIGTERM', 'SIGTERM');
    expect(await fb.code).toBe(0);
    await expect(fetch(`${fb.base}/health`)).rejects.toThrow();
  });

  it('keeps the database on a restart and moves the login to the password in force', async () => {
    const first = await start({});
    first.signals.emit('SIGTERM', 'SIGTERM');
    await first.code;

    const chosen = 'chosen-password-12';
    const second = await start({ FB_PASSWORD: chosen });
    const db = filebrowserDatabase(second.config);
    const calls = (await argvs()).slice(5);
    expect(calls.map((a) => a.slice(0, 2))).toEqual([['version'], ['config', 'set'], ['users', 'update'], ['-d', db]]);
    expect(calls[2]).toEqual(['users', 'update', 'admin', '--password', chosen, '--perm.admin', '-d', db]);
    expect(await second.login('admin', chosen)).toBe(200);
    expect(await second.login('admin', first.config.filebrowser.password)).toBe(403);
    expect(second.out.text()).toBe('');
    second.signals.emit('SIGINT', 'SIGINT');
    expect(await second.code).toBe(0);
  });

  it('adds the user when FB_USERNAME changed since the database was made', async () => {
    const first = await start({});
    first.signals.emit('SIGTERM', 'SIGTERM');
    await first.code;
    const second = await start({ FB_USERNAME: 'someone', FB_PASSWORD: 'someone-password-1' });
    const calls = (await argvs()).slice(5).map((a) => a.slice(0, 3));
    expect(calls).toContainEqual(['users', 'update', 'someone']);
    expect(calls).toContainEqual(['users', 'add', 'someone']);
    expect(await second.login('someone', 'someone-password-1')).toBe(200);
    second.signals.emit('SIGTERM', 'SIGTERM');
    await second.code;
  });

  it('says FileBrowser is off and exits 0 when no filebrowser is on PATH', async () => {
    const config = await testConfig({ WORKSPACE: workspace, PATH: path.join(workspace, 'empty-bin') });
    const logs = capture();
    const log = createLogger({ secrets: config.secrets, debug: false, destination: logs.stream });
    expect(await runFileBrowser(config, { log, out: capture().stream })).toBe(0);
    expect(logs.text()).toContain('no filebrowser binary on PATH');
  });

  it('exits non-zero when filebrowser dies, so supervisord restarts it', async () => {
    const fb = await start({});
    const pid = JSON.parse(
      fb.logs
        .text()
        .split('\n')
        .find((l) => l.includes('filebrowser started'))!,
    ) as { pid: number };
    process.kill(pid.pid, 'SIGKILL');
    expect(await fb.code).toBe(1);
    expect(fb.logs.text()).toContain('filebrowser exited');
  });
});
