import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBoard } from '../../src/board/server.js';
import type { Queues } from '../../src/queue/queues.js';
import { startBoardOnly, type BoardOnly } from '../fixtures/board-only.js';

/** The board server over a real Redis with no workers: what the API enqueues stays in the queues. */
describe('board server', () => {
  let stack: BoardOnly;
  let queues: Queues;
  let board: RunningBoard;
  const auth = { authorization: `Basic ${Buffer.from('admin:board-password-1').toString('base64')}` };

  beforeAll(async () => {
    stack = await startBoardOnly({ PHOENIX_PASSWORD: 'board-password-1' }, { prefix: `board${process.pid}` });
    ({ queues, board } = stack);
  });
  afterAll(() => stack.close());

  const post = (route: string, body: unknown, headers: Record<string, string> = auth) =>
    fetch(`${board.url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('answers /healthz without auth and everything else only with it', async () => {
    expect(await (await fetch(`${board.url}/healthz`)).json()).toEqual({ ok: true });
    for (const route of ['/status', '/board/', '/api/jobs/x']) {
      const res = await fetch(`${board.url}${route}`);
      expect(res.status, route).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
    }
    const wrong = await fetch(`${board.url}/status`, { headers: { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${board.url}/status`, { headers: auth })).status).toBe(200);
  });

  it('serves Bull Board over the four provisioning queues and the webhooks queue', async () => {
    const page = await fetch(`${board.url}/board/`, { headers: auth });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<base href="/board/"');
    const api = await fetch(`${board.url}/board/api/queues`, { headers: auth });
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    expect(names).toEqual(['download', 'nodes', 'organize', 'service', 'webhooks']);
  });

  it('shows the queues read-only: every write answers 405 and changes nothing', async () => {
    const queuesApi = (await (await fetch(`${board.url}/board/api/queues`, { headers: auth })).json()) as { queues: { readOnlyMode: boolean }[] };
    expect(queuesApi.queues.length).toBeGreaterThanOrEqual(4);
    expect(queuesApi.queues.every((q) => q.readOnlyMode)).toBe(true);
    const writes: [string, string][] = [
      ['PUT', '/board/api/queues/download/pause'],
      ['PUT', '/board/api/queues/pause'],
      ['POST', '/board/api/queues/download/add'],
      ['PUT', '/board/api/queues/download/clean/completed'],
      ['PATCH', '/board/api/queues/download/some-job/update-data'],
      ['PUT', '/board/api/queues/download/obliterate'],
    ];
    for (const [method, route] of writes) {
      const res = await fetch(`${board.url}${route}`, {
        method,
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'download-model', data: { id: '../../x' } }),
      });
      expect(res.status, `${method} ${route}`).toBe(405);
    }
    expect(await queues.queue.download.isPaused()).toBe(false);
    expect(await queues.queue.download.count()).toBe(0);
  });

  it('reports the documented /status shape', async () => {
    const s = (await (await fetch(`${board.url}/status`, { headers: auth })).json()) as Record<string, unknown>;
    expect(s).toMatchObject({
      ready: false,
      comfyui: { state: 'waiting', pid: null, port: 8188, restarts: 0, auth: 'on' },
      models: [],
      nodes: [],
      workflows: [],
      queues: { download: { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0 } },
      gpus: [],
      versions: { phoenix: '0.1.0' },
    });
    expect(Object.keys(s.queues as object).sort()).toEqual(['download', 'nodes', 'organize', 'service', 'webhooks']);
    expect((s.disk as { freeBytes: number }).freeBytes).toBeGreaterThan(0);
  });

  it('answers a request without a JSON body with 400 naming the problem', async () => {
    const noBody = await fetch(`${board.url}/api/models`, { method: 'POST', headers: auth });
    expect(noBody.status).toBe(400);
    expect(await noBody.json()).toEqual({ error: 'invalid request', problems: ['body: missing; send a JSON object'] });
    const form = await post('/api/models', 'source=civitai&versionId=1', { ...auth, 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(400);
    expect(await form.json()).toEqual({
      error: 'invalid request',
      problems: ['body: must be JSON (Content-Type: application/json), not application/x-www-form-urlencoded'],
    });
    const emptyJson = await post('/api/nodes', '', auth);
    expect(emptyJson.status).toBe(400);
    expect(((await emptyJson.json()) as { problems: string[] }).problems).toEqual(['body: missing; send a JSON object']);
    expect(await queues.queue.download.count()).toBe(0);
  });

  it('answers bad requests with 400 or 413 naming the problem, never 5xx, and stays up', async () => {
    const problemsOf = async (res: Response) => ((await res.json()) as { problems: string[] }).problems;
    const big = await post('/api/models', JSON.stringify({ source: 'url', url: `https://example.com/${'a'.repeat(1024 * 1024)}` }));
    expect(big.status).toBe(413);
    expect(await problemsOf(big)).toEqual([expect.stringMatching(/^body: \d+ bytes; at most 262144 bytes are accepted$/)]);

    const nested = await post('/api/models', `{"models":${'['.repeat(5000)}${']'.repeat(5000)}}`);
    expect(nested.status).toBe(400);
    expect(await problemsOf(nested)).toEqual(['body: nested more than 32 levels deep']);

    const latin1 = await fetch(`${board.url}/api/models`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: Buffer.concat([Buffer.from('{"source":"url","url":"https://example.com/a","filename":"caf'), Buffer.from([0xe9]), Buffer.from('.safetensors"}')]),
    });
    expect(latin1.status).toBe(400);
    expect(await problemsOf(latin1)).toEqual(['body: is not valid UTF-8; send JSON encoded as UTF-8']);

    const notList = await post('/api/models', { models: { source: 'civitai', versionId: '1' } });
    expect(notList.status).toBe(400);
    expect(await problemsOf(notList)).toEqual(['models: must be a list of model specs']);

    const url = (filename: string) => ({ source: 'url', url: 'https://example.com/m', category: 'loras', filename });
    const names = await post('/api/models', {
      models: [
        { source: 'civitai', versionId: 9007199254740993 },
        { source: 'civitai', versionId: '1'.repeat(10_000) },
        url('\ud800model.safetensors'),
        url('evil\u202Eexe.safetensors'),
        url(`${'n'.repeat(288)}.safetensors`),
        url('a/b.safetensors'),
      ],
    });
    expect(names.status).toBe(400);
    expect(await problemsOf(names)).toEqual([
      expect.stringMatching(/^models\[0\]\.versionId: must be sent as a string .*JSON numbers past 2\^53 are rounded/),
      'models[1].versionId: must be a CivitAI model-version id of at most 20 digits',
      'models[2].filename: is not valid Unicode: a lone surrogate (U+D800) at character 1 has no UTF-8 form',
      expect.stringMatching(/^models\[3\]\.filename: must not contain bidirectional control characters \(U\+202E RIGHT-TO-LEFT OVERRIDE at character 5\)/),
      'models[4].filename: is too long: 300 characters, 300 bytes in UTF-8; a file or folder name may have at most 255 bytes',
      'models[5].filename: must be a plain file name, without "/" or "\\"',
    ]);
    expect(await queues.queue.download.count()).toBe(0);

    // Ids are kept as the text they were sent as; a name in any script is fine.
    const exact = await post('/api/models', { models: [{ source: 'civitai', versionId: '9007199254740993' }, url('モデル-ü.safetensors')] });
    expect(exact.status).toBe(202);
    const added = ((await exact.json()) as { models: { jobIds: string[] }[] }).models;
    const jobs = await Promise.all(added.map((m) => queues.queue.download.getJob(m.jobIds[1]!)));
    expect(jobs.map((j) => j?.data.spec)).toEqual([
      { source: 'civitai', versionId: '9007199254740993' },
      { source: 'url', url: 'https://example.com/m', category: 'loras', filename: 'モデル-ü.safetensors' },
    ]);
    for (const m of added) await (await queues.queue.organize.getJob(m.jobIds[0]!))?.remove({ removeChildren: true });
    expect((await fetch(`${board.url}/healthz`)).status).toBe(200);
  });

  it('rejects invalid model specs with every problem listed, enqueueing nothing', async () => {
    const res = await post('/api/models', {
      models: [
        { source: 'dropbox', url: 'https://x' },
        { source: 'url', url: 'file:///etc/passwd', category: 'loras' },
        { source: 'civitai', versionId: '12ab' },
        { source: 'url', url: 'https://example.com/a', filename: '../a.safetensors', category: '../../etc' },
        { source: 'url', url: 'https://example.com/b', headers: { Authorization: 'Bearer x' } },
      ],
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { problems: string[] };
    expect(body.problems).toEqual([
      expect.stringMatching(/^models\[0\]\.source: source must be one of/),
      expect.stringMatching(/^models\[1\]\.url: must be an http\(s\) URL/),
      expect.stringMatching(/^models\[2\]\.versionId: must be a numeric/),
      expect.stringMatching(/^models\[3\]\.category: is not a ComfyUI model folder/),
      expect.stringMatching(/^models\[3\]\.filename: must be a plain file name/),
      expect.stringMatching(/^models\[4\]\.headers: header values are secrets/),
    ]);
    expect(await queues.queue.download.count()).toBe(0);
    const bad = await post('/api/models', '{"source": ');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe('invalid JSON');
  });

  it('enqueues a valid model once and shows its job', async () => {
    const spec = { source: 'url', url: 'https://example.com/x.safetensors', filename: 'x.safetensors', category: 'lora' };
    const res = await post('/api/models', spec);
    expect(res.status).toBe(202);
    const { models } = (await res.json()) as { models: { id: string; jobIds: string[]; status: string }[] };
    expect(models).toHaveLength(1);
    expect(models[0]!.status).toBe('queued');
    expect(models[0]!.jobIds).toEqual([`organize-${models[0]!.id}`, `download-${models[0]!.id}`]);

    const again = (await (await post('/api/models', spec)).json()) as { models: { status: string }[] };
    expect(again.models[0]!.status).toBe('exists');
    expect(await queues.queue.download.count()).toBe(1);

    const job = (await (await fetch(`${board.url}/api/jobs/${models[0]!.jobIds[1]}`, { headers: auth })).json()) as Record<string, unknown>;
    expect(job).toMatchObject({ queue: 'download', name: 'download-model', state: 'waiting' });
    expect((await fetch(`${board.url}/api/jobs/nope`, { headers: auth })).status).toBe(404);

    const status = (await (await fetch(`${board.url}/status`, { headers: auth })).json()) as { models: unknown[] };
    expect(status.models).toMatchObject([{ name: 'x.safetensors', category: 'loras', state: 'queued', source: 'url', origin: 'api' }]);
  });

  it('validates and enqueues custom nodes', async () => {
    const bad = await post('/api/nodes', { url: '-uhttps://x/y' });
    expect(bad.status).toBe(400);
    const res = await post('/api/nodes', { url: 'https://github.com/ltdrdata/ComfyUI-Impact-Pack.git', ref: 'v8.1' });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const job = await queues.queue.nodes.getJob(jobId);
    expect(job?.data).toEqual({ node: { name: 'ComfyUI-Impact-Pack', url: 'https://github.com/ltdrdata/ComfyUI-Impact-Pack.git', ref: 'v8.1' } });
  });

  it('lists every model in /status, well past a thousand', { timeout: 60_000 }, async () => {
    const spec = (i: number) => ({ source: 'url', url: `https://example.com/many/${i}.safetensors`, category: 'loras' });
    for (const [from, count] of [[0, 500], [500, 500], [1000, 150]] as const) {
      const res = await post('/api/models', { models: Array.from({ length: count }, (_, i) => spec(from + i)) });
      expect(res.status).toBe(202);
    }
    const status = (await (await fetch(`${board.url}/status`, { headers: auth })).json()) as { models: { name: string }[] };
    const many = status.models.filter((m) => m.name.startsWith('example.com/many/'));
    expect(many).toHaveLength(1150);
    expect(new Set(many.map((m) => m.name)).size).toBe(1150);
  });
});
