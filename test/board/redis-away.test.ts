import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBoard, type RunningBoard } from '../../src/board/server.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import { RedisHealth } from '../../src/lib/redis-health.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { EmbeddedRedis, connect } from '../../src/runtime/redis.js';
import { eventually, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

/** The board while its Redis is killed and comes back: quick 503s naming why, one log line, then 200 again. */
describe('board without Redis', () => {
  let dir: string;
  let redis: EmbeddedRedis;
  let ws: Workspace;
  let board: RunningBoard;
  let queues: Queues;
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString())), done()) }));
  const auth = { authorization: `Basic ${Buffer.from('admin:away-password').toString('base64')}` };
  const connection = () => connect({ path: redis.socket }, 'api');
  let conn: ReturnType<typeof connection>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-away-'));
    redis = new EmbeddedRedis({ stateDir: dir, persistent: false, log: silentLog });
    await redis.start();
    ws = await makeWorkspace();
    const config = await testConfig({ WORKSPACE: ws.dir, PHOENIX_PASSWORD: 'away-password' });
    conn = connection();
    const health = new RedisHealth(conn, redis.socket, log);
    queues = openQueues(conn, `away${process.pid}`);
    await new Promise((resolve) => conn.once('ready', resolve));
    board = await startBoard({ config, queues, pod: new PodState(conn, queues.prefix), log, port: 0, comfyPort: 0, host: '127.0.0.1', redis: health });
  });
  afterAll(async () => {
    await board.close();
    await queues.close();
    conn.disconnect();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
    await ws.cleanup();
  });

  it('answers 503 at once with the reason while Redis is away, logs it once, and serves again when it is back', async () => {
    expect((await fetch(`${board.url}/status`, { headers: auth })).status).toBe(200);
    const pid = Number((await readFile(path.join(dir, 'redis-server.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    await eventually(() => conn.status !== 'ready', 5000, 'the connection to notice');

    const started = Date.now();
    const answers = [];
    for (const [method, route] of [['GET', '/status'], ['POST', '/api/models'], ['GET', '/board/api/queues'], ['GET', '/api/jobs/x']] as const) {
      const res = await fetch(`${board.url}${route}`, {
        method,
        headers: { ...auth, 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: JSON.stringify({ source: 'civitai', versionId: '1' }) } : {}),
      });
      answers.push({ route, status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { error: string; problems: string[] } });
    }
    // Answered at once rather than held until Redis is back (it is not, here): a bound far from both.
    expect(Date.now() - started).toBeLessThan(5000);
    for (const a of answers) {
      expect(a, a.route).toMatchObject({ status: 503, retryAfter: '5', body: { error: 'Redis is unavailable' } });
      expect(a.body.problems[0]).toMatch(new RegExp(`^Redis at ${redis.socket} is unavailable for \\d+s \\(.+\\); Phoenix reconnects on its own`));
    }
    expect((await fetch(`${board.url}/healthz`)).status).toBe(200);

    // Reconnect attempts go on every few hundred ms: the log says it once.
    await new Promise((r) => setTimeout(r, 2500));
    expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual(['lost the connection to Redis; reconnecting']);

    redis = new EmbeddedRedis({ stateDir: dir, persistent: false, log: silentLog });
    await redis.start();
    await eventually(async () => (await fetch(`${board.url}/status`, { headers: auth })).status === 200, 10_000, '/status again');
    expect(lines.map((l) => l.msg)).toContain('Redis is back');
  });
});
