import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningBoard } from '../../src/board/server.js';
import { PodCounters } from '../../src/fleet/counters.js';
import type { Queues } from '../../src/queue/queues.js';
import { startBoardOnly, type BoardOnly } from '../fixtures/board-only.js';

const TOKEN = 'scrape-token-0123456789abcdef';

/** GET /metrics of a single pod: Prometheus text read from Redis, behind the login or the metrics token. */
describe('/metrics', () => {
  let stack: BoardOnly;
  let queues: Queues;
  let board: RunningBoard;
  const basic = { authorization: `Basic ${Buffer.from('admin:metrics-password').toString('base64')}` };

  beforeAll(async () => {
    stack = await startBoardOnly(
      { PHOENIX_PASSWORD: 'metrics-password', METRICS_TOKEN: TOKEN },
      {
        prefix: `metrics${process.pid}`,
        counters: (conn, prefix) => new PodCounters(conn, prefix),
        async prepare({ config, queues: q, pod, counters }) {
          await counters!.addDownload('huggingface', 'origin', 5000, 2);
          await counters!.addDownload('huggingface', 'mirror', 7000, 1);
          await counters!.addVerificationFailure('mirror');
          await pod.setComfy({ state: 'running', pid: 1, port: config.comfyui.port, restarts: 3, error: null, lastOutput: [], nextTryAt: null, startedAt: Date.now(), updatedAt: Date.now() });
          await q.queue.download.add('download-model', { x: 1 }, { jobId: 'waiting-one' });
        },
      },
    );
    ({ queues, board } = stack);
  });
  afterAll(() => stack.close());

  it('answers only the login or the metrics token', async () => {
    expect((await fetch(`${board.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${board.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789abcd' } })).status).toBe(401);
    expect((await fetch(`${board.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${board.url}/metrics`, { headers: basic })).status).toBe(200);
    // The token opens /metrics and nothing else.
    expect((await fetch(`${board.url}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
  });

  it('reports queue counts, bytes by source and by origin or mirror, failures, restarts and readiness', async () => {
    const res = await fetch(`${board.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^phoenix_queue_jobs\{queue="download",state="waiting"\} 1$/m);
    expect(text).toMatch(/^phoenix_queue_jobs\{queue="service",state="completed"\} 0$/m);
    expect(text).toMatch(/^phoenix_download_bytes_total\{source="huggingface",from="origin"\} 5000$/m);
    expect(text).toMatch(/^phoenix_download_bytes_total\{source="huggingface",from="mirror"\} 7000$/m);
    expect(text).toMatch(/^phoenix_download_seconds_total\{from="origin"\} 2$/m);
    expect(text).toMatch(/^phoenix_verification_failures_total\{from="mirror"\} 1$/m);
    expect(text).toMatch(/^phoenix_comfyui_restarts_total 3$/m);
    expect(text).toMatch(/^phoenix_download_bytes_per_second 0$/m);
    // Running by its own account, but nothing answers on its port: not ready.
    expect(text).toMatch(/^phoenix_pod_ready 0$/m);
    expect(text).toMatch(/^# TYPE phoenix_download_bytes_total counter$/m);
  });
});
