import { rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fixtures/webhook-receiver.js';
import { eventually, freePort } from '../helpers.js';
import { startPod, type Pod } from '../workflows/harness.js';

const SECRET = 'whsec-delivery-0123456789';

/** Webhook delivery on its own queue: signed, retried, and never in provisioning's way. */
describe('webhook delivery', () => {
  let redis: TestRedis;
  let receiver: WebhookReceiver;
  let pod: Pod | undefined;

  beforeAll(async () => {
    redis = await startTestRedis();
    receiver = await startWebhookReceiver(SECRET);
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), receiver.close()]);
  });
  afterEach(async () => {
    await pod?.stop();
    pod = undefined;
    receiver.events.length = 0;
  });

  it('retries a receiver that answers 503, sending the same signed bytes', async () => {
    receiver.failNext(1, 503);
    pod = await startPod(redis.socket, { PHOENIX_WEBHOOK_URL: receiver.url, PHOENIX_WEBHOOK_SECRET: SECRET });
    const ready = await eventually(() => receiver.events.find((e) => e.type === 'pod.ready'), 20_000, 'pod.ready after a retry');
    expect(ready.signed).toBe(true);
    expect(ready.body).toMatchObject({ type: 'pod.ready', comfyui: { port: pod.config.comfyui.port } });
    expect(receiver.attempts).toBe(2);
    const job = (await pod.queues.queue.webhooks.getJobs(['completed']))[0]!;
    expect(job.attemptsMade).toBe(2);
    expect(job.data.body).toBe(ready.raw);
    expect(ready.headers['x-phoenix-delivery']).toBe(job.id);
  });

  it('tells of a ComfyUI crash and the restart that brought it back', async () => {
    const marker = path.join(os.tmpdir(), `phoenix-crash-${process.pid}-${Date.now()}`);
    pod = await startPod(redis.socket, {
      PHOENIX_WEBHOOK_URL: receiver.url,
      PHOENIX_WEBHOOK_SECRET: SECRET,
      STANDIN_EXIT_AFTER: '0.5',
      STANDIN_EXIT_MARKER: marker,
    });
    const restarted = await eventually(() => receiver.events.find((e) => e.type === 'comfyui.restarted'), 20_000, 'comfyui.restarted');
    const crashed = receiver.events.find((e) => e.type === 'comfyui.crashed')!;
    expect(crashed.body).toMatchObject({ comfyui: { code: 1, signal: null, restarts: 0 } });
    expect(restarted.body).toMatchObject({ comfyui: { restarts: 1, reason: 'it had exited' } });
    expect(receiver.events.map((e) => e.type).filter((t) => t.startsWith('comfyui.'))).toEqual(['comfyui.crashed', 'comfyui.restarted']);
    await rm(marker, { force: true });
  });

  it('does not hold up provisioning when the receiver is down, and gives up on one that refuses', async () => {
    const closedPort = await freePort();
    pod = await startPod(redis.socket, { PHOENIX_WEBHOOK_URL: `http://127.0.0.1:${closedPort}/hook`, PHOENIX_WEBHOOK_SECRET: SECRET });
    await pod.until((s) => s.ready, 'ComfyUI ready without a receiver');
    const waiting = await eventually(async () => {
      const jobs = await pod!.queues.queue.webhooks.getJobs(['delayed', 'wait', 'active']);
      return jobs.length > 0 ? jobs : undefined;
    }, 10_000, 'the event waiting for its receiver');
    expect(waiting[0]!.data.event).toBe('pod.ready');
    await pod.stop();
    pod = undefined;

    const refusing = createServer((_req, res) => res.writeHead(404).end());
    const port = await freePort();
    await new Promise<void>((r) => refusing.listen(port, '127.0.0.1', r));
    try {
      pod = await startPod(redis.socket, { PHOENIX_WEBHOOK_URL: `http://127.0.0.1:${port}/wrong-path`, PHOENIX_WEBHOOK_SECRET: SECRET });
      const failed = await eventually(async () => (await pod!.queues.queue.webhooks.getJobs(['failed']))[0], 10_000, 'a refused event');
      expect(failed.attemptsMade).toBe(1);
      expect(failed.failedReason).toBe(`webhook receiver http://127.0.0.1:${port} refused the event (HTTP 404): check PHOENIX_WEBHOOK_URL`);
    } finally {
      refusing.close();
    }
  });
});
