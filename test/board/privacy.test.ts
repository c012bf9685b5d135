import path from 'node:path';
import { execa } from 'execa';
import { Agent, fetch as fetchWith } from 'undici';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBoard, type RunningBoard } from '../../src/board/server.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import { runPrivacy } from '../../src/commands/privacy.js';
import type { Config } from '../../src/config/index.js';
import type { PrivacyDetails } from '../../src/privacy/status.js';
import { PrivacyStore } from '../../src/privacy/store.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { REPO_ROOT, freePort, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

/** /api/privacy, /status.privacy, the board's page and `phoenix privacy`, over a real Redis and board. */
describe('privacy control through the board', () => {
  let redis: TestRedis;
  let conn: Redis;
  let queues: Queues;
  let ws: Workspace;
  let config: Config;
  let board: RunningBoard;
  let env: Record<string, string>;
  const auth = { authorization: `Basic ${Buffer.from('admin:privacy-board-pw').toString('base64')}` };
  const prefix = 'phoenix';

  const start = async () => startBoard({ config, queues, pod: new PodState(conn, prefix), log: silentLog, port: Number(env.PHOENIX_PORT), comfyPort: 0, host: '127.0.0.1' });
  const post = (route: string, body?: unknown) =>
    fetch(`${board.url}${route}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const details = async () => (await (await fetch(`${board.url}/api/privacy`, { headers: auth })).json()) as PrivacyDetails;
  const phoenix = (args: string[]) =>
    execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), 'privacy', ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      extendEnv: false,
      reject: false,
    });

  beforeAll(async () => {
    redis = await startTestRedis();
    ws = await makeWorkspace();
    env = { WORKSPACE: ws.dir, PHOENIX_PORT: String(await freePort()), PHOENIX_PASSWORD: 'privacy-board-pw', PRIVACY_ENABLED: 'true', PRIVACY_DENY: 'bad.example' };
    config = await testConfig(env);
    conn = new Redis({ path: redis.socket, maxRetriesPerRequest: 1 });
    queues = openQueues(conn, prefix);
    board = await start();
  });
  afterAll(async () => {
    await board.close();
    await queues.close();
    conn.disconnect();
    await redis.stop();
    await ws.cleanup();
  });

  it('asks for the login like the rest of the API', async () => {
    expect((await fetch(`${board.url}/api/privacy`)).status).toBe(401);
    expect((await fetch(`${board.url}/api/privacy/lockdown`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${board.url}/privacy`)).status).toBe(401);
  });

  it('answers bad input with 400 naming the field, and changes nothing', async () => {
    const cases: [unknown, string][] = [
      [{}, 'host: missing'],
      [{ host: 'not a host' }, 'host: "not a host" is not a host name'],
      [{ host: 'ok.example', seconds: 'soon' }, 'seconds: "soon" is not a whole number of seconds'],
      [{ host: 'ok.example', seconds: 0 }, 'seconds: 0 is out of range'],
    ];
    for (const [body, problem] of cases) {
      const res = await post('/api/privacy/allow', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const answer = (await res.json()) as { error: string; problems: string[] };
      expect(answer.problems.join('\n')).toContain(problem);
    }
    expect((await post('/api/privacy/deny', { host: '*.com' })).status).toBe(400);
    expect((await details()).rules.allow).toEqual([]);
  });

  it('allows a host for a while, denies one, and shows both with their source', async () => {
    const before = Date.now();
    expect((await post('/api/privacy/allow', { host: 'Extra.Example', seconds: 60 })).status).toBe(200);
    expect((await post('/api/privacy/deny', { host: '*.tracker.example' })).status).toBe(200);
    const d = await details();
    expect(d.rules.allow).toEqual([{ pattern: 'extra.example', until: expect.any(Number), source: 'runtime' }]);
    expect(d.rules.allow[0]!.until!).toBeGreaterThanOrEqual(before + 60_000);
    expect(d.rules.deny).toEqual([
      { pattern: 'bad.example', source: 'PRIVACY_DENY' },
      { pattern: '*.tracker.example', source: 'runtime' },
    ]);
  });

  it('puts privacy in /status: phase, honest enforcement and counters', async () => {
    const status = (await (await fetch(`${board.url}/status`, { headers: auth })).json()) as { privacy: Record<string, unknown> };
    expect(status.privacy).toMatchObject({
      enabled: true,
      phase: 'startup',
      enforcement: 'none',
      reason: expect.stringContaining('the egress proxy is not running'),
      blocked: 0,
      allowed: 0,
      recent: [],
    });
    const store = new PrivacyStore(queues, config);
    await store.publishEnforcement({ enforcement: 'proxy', reason: 'advisory', proxy: 'http://127.0.0.1:1', user: null, updatedAt: Date.now() }, 60_000);
    await store.record({
      time: Date.now(), host: 'api.openai.com', port: 443, method: 'CONNECT', user: 'comfy', allowed: false, wouldBlock: false,
      category: 'ai-service', rule: 'AI service (BLOCK_AI_SERVICES)', phase: 'startup', bytesSent: 0, bytesReceived: 0, durationMs: 0,
    });
    const after = (await (await fetch(`${board.url}/status`, { headers: auth })).json()) as { privacy: Record<string, unknown> };
    expect(after.privacy).toMatchObject({ enforcement: 'proxy', blocked: 1, recent: [expect.objectContaining({ host: 'api.openai.com', user: 'comfy' })] });
  });

  it('shows blocked connections on a page linked from Bull Board', async () => {
    const page = await (await fetch(`${board.url}/privacy`, { headers: auth })).text();
    expect(page).toContain('<td>api.openai.com</td><td>443</td><td>comfy</td>');
    const boardPage = await (await fetch(`${board.url}/board/`, { headers: auth })).text();
    expect(boardPage).toContain('/privacy');
  });

  it('keeps a lockdown across a board restart until it is released', async () => {
    expect(await (await post('/api/privacy/lockdown')).json()).toEqual({ lockdown: true, phase: 'lockdown' });
    await board.close();
    board = await start();
    // A fresh connection: the client's kept-alive one went with the old server.
    const res = await fetchWith(`${board.url}/api/privacy`, { headers: auth, dispatcher: new Agent() });
    expect(((await res.json()) as PrivacyDetails).phase).toBe('lockdown');
    expect(await (await post('/api/privacy/release')).json()).toEqual({ lockdown: false, phase: 'startup' });
  });

  it('phoenix privacy: exits 2 on a bad host before calling the API, and works otherwise', async () => {
    const [badHost, allowed] = await Promise.all([phoenix(['allow', 'no such host']), phoenix(['allow', 'cli.example', '120'])]);
    expect(badHost.exitCode).toBe(2);
    expect(badHost.stderr).toContain('HOST: "no such host" is not a host name');
    expect(allowed.exitCode, allowed.stderr).toBe(0);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ allowed: 'cli.example' });
  }, 30_000);

  it('phoenix privacy: every action, in process', async () => {
    const run = async (...args: string[]) => {
      let out = '';
      const write = process.stdout.write;
      const writeErr = process.stderr.write;
      process.stdout.write = process.stderr.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
      try {
        return { code: await runPrivacy(config, args, false), out };
      } finally {
        process.stdout.write = write;
        process.stderr.write = writeErr;
      }
    };
    expect(await run('allow', 'ok.example', '5m')).toMatchObject({ code: 2, out: expect.stringContaining('SECONDS: "5m" is not a whole number of seconds') });
    expect((await run('deny', 'ok.example', '60')).code).toBe(2);
    expect((await run('frobnicate')).code).toBe(2);
    expect((await run('lockdown')).code).toBe(0);
    const status = await run('status');
    expect(status.out).toMatch(/^privacy: on {2}phase: lockdown {2}enforcement: proxy/);
    expect(status.out).toContain('BLOCKED      api.openai.com:443  comfy');
    expect((await run('release')).code).toBe(0);
    const summary = await run('summary');
    expect(summary.out).toContain('cli.example  (runtime, until');
    expect(summary.out).toContain('api.openai.com  1 / 0 / 0');
  });

  it('refuses changes while privacy is off, saying so', async () => {
    const offEnv = { ...env, PHOENIX_PORT: String(await freePort()), PRIVACY_ENABLED: 'false' };
    const off = await startBoard({ config: await testConfig(offEnv), queues, pod: new PodState(conn, prefix), log: silentLog, port: Number(offEnv.PHOENIX_PORT), comfyPort: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`${off.url}/api/privacy/lockdown`, { method: 'POST', headers: auth });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: string }).error).toContain('PRIVACY_ENABLED=false');
      const s = (await (await fetch(`${off.url}/api/privacy`, { headers: auth })).json()) as PrivacyDetails;
      expect(s).toMatchObject({ enabled: false, enforcement: 'none' });
    } finally {
      await off.close();
    }
  });
});
