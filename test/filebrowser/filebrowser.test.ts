import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { filebrowserDatabase, runFileBrowser } from '../../src/commands/filebrowser.js';
import { fileBrowserRoot, fileBrowserRules, managedFolders } from '../../src/commands/filebrowser-scope.js';
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

  const users = async (db: string) => (JSON.parse(await readFile(db, 'utf8')) as { users: { username: string }[] }).users.map((u) => u.username);

  it('sets up a fresh database non-interactively, never with the password on a command line, and prints a generated password once', async () => {
    const fb = await start({});
    const db = filebrowserDatabase(fb.config);
    expect(db).toBe(path.join(workspace, '.phoenix', 'filebrowser.db'));
    const { port, username, password } = fb.config.filebrowser;
    const calls = await argvs();
    expect(calls.map((a) => a.slice(0, 2))).toEqual([['version'], ['config', 'init'], ['config', 'set'], ['users', 'import'], ['-d', db]]);
    expect(calls[2]).toEqual([
      // Models in the ComfyUI checkout: the root is the checkout; the rules keep the rest of it out of reach.
      'config', 'set', '-d', db, '--address', '0.0.0.0', '--port', String(port), '--root', path.join(workspace, 'ComfyUI'),
      '--signup=false', '--createUserDir=false', '--disableExec=true', '--auth.method', 'json',
    ]);
    expect(calls[3]).toEqual(['users', 'import', path.join(workspace, '.phoenix', 'filebrowser-users.json'), '--replace', '-d', db]);
    expect(JSON.stringify(calls)).not.toContain(password);
    // The file that carried the hash, and FileBrowser's backup of it, are gone.
    expect((await readdir(path.join(workspace, '.phoenix'))).sort()).toEqual(['filebrowser.db']);
    expect(await (await fetch(`${fb.base}/health`)).json()).toEqual({ status: 'OK' });
    expect(await fb.login(username, password)).toBe(200);
    expect(await fb.login(username, 'wrong-password-123')).toBe(403);
    expect(fb.out.text().split(password).length - 1).toBe(1);
    expect(fb.logs.text()).toContain('filebrowser started');
    expect(fb.logs.text()).not.toContain(password);

    fb.signals.emit('SIGTERM', 'SIGTERM');
    expect(await fb.code).toBe(0);
    await expect(fetch(`${fb.base}/health`)).rejects.toThrow();
  });

  it('re-applies its settings at every start: one user from FB_USERNAME / FB_PASSWORD, no sign-up, no commands', async () => {
    const first = await start({});
    first.signals.emit('SIGTERM', 'SIGTERM');
    await first.code;
    // A database from elsewhere on the volume: sign-up and commands on, another user.
    const db = filebrowserDatabase(first.config);
    const data = JSON.parse(await readFile(db, 'utf8')) as Record<string, unknown> & { users: unknown[] };
    Object.assign(data, { signup: true, execEnabled: true });
    data.users.push({ username: 'intruder', password: data.users.length ? (data.users[0] as { password: string }).password : '', perm: { admin: true } });
    await writeFile(db, JSON.stringify(data));

    const chosen = 'chosen-password-12';
    const second = await start({ FB_USERNAME: 'someone', FB_PASSWORD: chosen });
    expect(await users(db)).toEqual(['someone']);
    const settings = JSON.parse(await readFile(db, 'utf8')) as Record<string, unknown>;
    expect(settings).toMatchObject({ signup: false, execEnabled: false, authMethod: 'json', createUserDir: false });
    expect(await second.login('someone', chosen)).toBe(200);
    expect(await second.login('intruder', first.config.filebrowser.password)).toBe(403);
    expect(await second.login('admin', first.config.filebrowser.password)).toBe(403);
    expect((await fetch(`${second.base}/api/signup`, { method: 'POST', body: '{}' })).status).toBe(405);
    expect(second.out.text()).toBe('');
    second.signals.emit('SIGINT', 'SIGINT');
    expect(await second.code).toBe(0);
  });

  it('lets its user reach the models and ComfyUI\'s input, output and workflows, never the record, custom nodes or the rest of the checkout', async () => {
    const comfy = path.join(workspace, 'ComfyUI');
    for (const dir of ['ComfyUI/models/loras', 'ComfyUI/custom_nodes/Node', 'ComfyUI/user/default/workflows', '.phoenix']) await mkdir(path.join(workspace, dir), { recursive: true });
    await writeFile(path.join(comfy, 'models/loras/a.safetensors'), 'a');
    await writeFile(path.join(comfy, 'models/.phoenix-verified.json'), '{}');
    await writeFile(path.join(comfy, 'custom_nodes/Node/__init__.py'), '');
    await writeFile(path.join(comfy, 'main.py'), '');
    const fb = await start({ FB_PASSWORD: 'scope-password-12' });
    const token = (await (await fetch(`${fb.base}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'admin', password: 'scope-password-12' }) })).json()) as { token: string };
    const get = async (p: string) => {
      const r = await fetch(`${fb.base}/api/resources${p}`, { headers: { 'X-Auth': token.token } });
      return { status: r.status, items: r.status === 200 ? ((await r.json()) as { items?: string[] }).items : undefined };
    };
    expect(await get('/')).toEqual({ status: 200, items: ['input', 'models', 'output', 'user'] });
    expect(await get('/models')).toEqual({ status: 200, items: ['loras'] });
    expect((await get('/models/loras')).items).toEqual(['a.safetensors']);
    expect(await get('/user')).toEqual({ status: 200, items: ['default'] });
    expect((await get('/user/default/workflows')).status).toBe(200);
    for (const denied of ['/custom_nodes', '/custom_nodes/Node/__init__.py', '/main.py', '/models/.phoenix-verified.json', '/models/.phoenix-tmp', '/user/comfy.settings.json']) {
      expect((await get(denied)).status, denied).toBe(403);
    }
    fb.signals.emit('SIGTERM', 'SIGTERM');
    await fb.code;
  });

  it('with models on a volume, roots at the workspace and keeps Phoenix\'s state out of reach', async () => {
    const config = await testConfig({ WORKSPACE: '/workspace', USE_VOLUME: 'true' });
    const folders = managedFolders(config);
    const root = fileBrowserRoot(folders);
    expect(root).toBe('/workspace');
    const rules = fileBrowserRules(root, folders);
    // FileBrowser's reading: every rule that matches sets allow, the last one wins.
    const allowed = (p: string) => rules.reduce((allow, r) => (new RegExp(r.regexp.raw).test(p) ? r.allow : allow), true);
    for (const p of ['/', '/storage', '/storage/models/loras/a.safetensors', '/ComfyUI', '/ComfyUI/input/x.png', '/ComfyUI/output/y.png', '/ComfyUI/user/default/workflows/w.json']) expect(allowed(p), p).toBe(true);
    for (const p of ['/.phoenix', '/.phoenix/record.key', '/storage/models/.phoenix-verified.json', '/storage/other', '/ComfyUI/custom_nodes', '/ComfyUI/models', '/ComfyUI/user/default/comfy.settings.json', '/ComfyUI/inputs']) expect(allowed(p), p).toBe(false);
  });

  it('has a stand-in that refuses a password on its command line', async () => {
    const r = await execa(path.join(STANDIN_DIR, 'filebrowser'), ['users', 'add', 'admin', 'some-password-12', '-d', path.join(workspace, 'x.db')], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refusing a password on the command line/);
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
