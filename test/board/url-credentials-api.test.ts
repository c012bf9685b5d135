import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBoard } from '../../src/board/server.js';
import type { Queues } from '../../src/queue/queues.js';
import { startBoardOnly, type BoardOnly } from '../fixtures/board-only.js';

/** Runtime additions would have to store a URL's credentials: the API refuses them, as it refuses header values. */
describe('the API and credentials inside URLs', () => {
  let stack: BoardOnly;
  let queues: Queues;
  let board: RunningBoard;
  const auth = { authorization: `Basic ${Buffer.from('admin:board-password-1').toString('base64')}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    stack = await startBoardOnly({ PHOENIX_PASSWORD: 'board-password-1' }, { prefix: `creds${process.pid}` });
    ({ queues, board } = stack);
  });
  afterAll(() => stack.close());

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
