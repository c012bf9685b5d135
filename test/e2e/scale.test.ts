import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allReady, sha256File, startUp, upEnv } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const PASSWORD = 'scale-password';
const MODELS = 300;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Runs `task` over `items`, `width` at a time. */
async function inBatches<T, R>(items: readonly T[], width: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(task))));
  return out;
}

/**
 * Hundreds of models: a manifest of 300 reaches ready and /status lists them all; Bull Board's
 * page loads; 200 concurrent additions of one model enqueue it once, of 200 models each once.
 * (How fast /status stays is measured in bench/scale.ts, not here.)
 */
describe('phoenix up with hundreds of models', () => {
  let hub: StaticServer;
  let ws: Workspace;
  const bodies = new Map<string, Buffer>();

  beforeAll(async () => {
    const files: Record<string, { body: Buffer }> = {};
    for (let i = 0; i < MODELS + 200; i++) {
      const body = randomBytes(2048 + i);
      files[`/s/m${i}.safetensors`] = { body };
      bodies.set(`m${i}.safetensors`, body);
    }
    hub = await startStaticServer(files);
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await hub.close();
    await ws.cleanup();
  });

  it('provisions 300 models, lists them all, and takes 400 concurrent additions without a race or a 5xx', { timeout: 240_000 }, async () => {
    const lines = Array.from({ length: MODELS }, (_, i) => `m${i} = "${hub.url(`/s/m${i}.safetensors`)}"`);
    const env = await upEnv(ws.dir, PASSWORD, {
      DOWNLOAD_CONCURRENCY: '8',
      PROVISION_URL: await writeManifest(`[models.loras]\n${lines.join('\n')}\n`),
    });
    const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
    const base = `http://127.0.0.1:${env.PHOENIX_PORT}`;
    const up = startUp(env, PASSWORD);
    try {
      const startedAt = Date.now();
      const ready = await up.until(allReady(MODELS), 180_000, `${MODELS} models ready`);
      console.log(`${MODELS} models ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
      for (const m of ready.models) expect(await sha256File(m.path!), m.name).toBe(sha(bodies.get(m.name)!));
      expect(new Set(ready.models.map((m) => m.name)).size).toBe(MODELS);

      const page = await fetch(`${base}/board/`, { headers: auth });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<base href="/board/"');
      const board = (await (await fetch(`${base}/board/api/queues?activeQueue=download&status=completed&page=1`, { headers: auth })).json()) as {
        queues: { name: string; counts: Record<string, number>; jobs: unknown[] }[];
      };
      expect(board.queues.find((q) => q.name === 'download')).toMatchObject({ counts: { completed: MODELS } });
      expect(board.queues.find((q) => q.name === 'download')!.jobs.length).toBeGreaterThan(0);

      const add = async (body: unknown): Promise<{ status: number; body: { models?: { id: string; status: string }[] } }> => {
        const res = await fetch(`${base}/api/models`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as { models?: { id: string; status: string }[] } };
      };
      // The same model 200 times, 20 at a time: enqueued once.
      const same = { source: 'url', url: hub.url(`/s/m${MODELS}.safetensors`), category: 'vae' };
      const repeated = await inBatches(Array.from({ length: 200 }, () => same), 20, add);
      expect(repeated.map((r) => r.status)).toEqual(Array(200).fill(202));
      expect(repeated.filter((r) => r.body.models?.[0]?.status === 'queued')).toHaveLength(1);
      expect(new Set(repeated.map((r) => r.body.models?.[0]?.id)).size).toBe(1);

      // 200 different models, 20 at a time (one of them the model above): each enqueued once.
      const distinct = Array.from({ length: 200 }, (_, i) => ({ source: 'url', url: hub.url(`/s/m${MODELS + i}.safetensors`), category: 'vae' }));
      const added = await inBatches(distinct, 20, add);
      expect(added.map((r) => r.status)).toEqual(Array(200).fill(202));
      expect(added.filter((r) => r.body.models?.[0]?.status === 'queued')).toHaveLength(199);
      expect(added.find((r) => r.body.models?.[0]?.status === 'exists')?.body.models?.[0]?.id).toBe(repeated[0]!.body.models?.[0]?.id);
      expect(new Set(added.map((r) => r.body.models?.[0]?.id)).size).toBe(200);

      // Each listed once, with one download job each.
      const all = await up.status();
      expect(all.models).toHaveLength(MODELS + 200);
      expect(new Set(all.models.map((m) => m.id)).size).toBe(MODELS + 200);
      const jobs = Object.values(all.queues.download).reduce((a, b) => a + b, 0);
      expect(jobs).toBe(MODELS + 200);
    } finally {
      expect(await up.stop()).toBe(0);
    }
  });
});
