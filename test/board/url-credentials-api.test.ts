import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBoard, type RunningBoard } from '../../src/board/server.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

/** Runtime additions would have to store a URL's credentials: the API refuses them, as it refuses header values. */
describe('the API and credentials inside URLs', () => {
  let redis: TestRedis;
  let conn: Redis;
  let queues: Queues;
  let board: RunningBoard;
  let ws: Workspace;
  const auth = { authorization: `Basic ${Buffer.from('admin:board-password-1').toString('base64')}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    redis = await startTestRedis();
    ws = await makeWorkspace();
    const config = await testConfig({ WORKSPACE: ws.dir, PHOENIX_PASSWORD: 'board-password-1' });
    conn = new Redis({ path: redis.socket, maxRetriesPerRequest: 1 });
    queues = openQueues(conn, `creds${process.pid}`);
    board = await startBoard({ config, queues, pod: new PodState(conn, queues.prefix), log: silentLog, port: 0, comfyPort: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await board.close();
    await queues.close();
    conn.disconnect();
    await redis.stop();
    await ws.cleanup();
  });

  const post = (route: string, body: unknown) => fetch(`${board.url}${route}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });

  it('refuses a model URL with user-info or a token parameter, enqueueing nothing', async () => {
    const res = await post('/api/models', {
      models: [
        { source: 'url', url: 'https://u:pw@example.com/a.safetensors', category: 'loras' },
        { source: 'url', url: 'https://example.com/b.safetensors?token=abc', category: 'loras' },
      ],
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { problems: string[] }).problems).toEqual([
      expect.stringMatching(/^models\[0\]\.url: credentials inside a URL are secrets/),
      expect.stringMatching(/^models\[1\]\.url: credentials inside a URL are secrets/),
    ]);
    expect(await queues.queue.download.count()).toBe(0);
  });

  it('refuses a node URL with user-info', async () => {
    const res = await post('/api/nodes', { url: 'https://ghp_token@github.com/o/Private.git' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { problems: string[] }).problems).toEqual([expect.stringMatching(/^node\.url: credentials inside a URL/)]);
    expect(await queues.queue.nodes.count()).toBe(0);
  });
});
