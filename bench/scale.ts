/**
 * Phoenix with many models, in one run: the real stack (`up`: embedded Redis, workers, board)
 * provisions 10, then 300 small models from a local file server; then GET /status, Bull Board's
 * page and its queue API are timed, and Redis's memory is read. The figures at 300 are given as
 * ratios to 10. For reference it also times what /status did before it read each queue in one
 * script: a round trip (or three) per job. Prints a table and writes bench/SCALE.md.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pino from 'pino';
import { loadConfig } from '../src/config/index.js';
import { jobIds, type ModelJobData } from '../src/queue/jobs.js';
import { openQueues } from '../src/queue/queues.js';
import { up } from '../src/runtime/up.js';
import { startStaticServer } from '../test/fixtures/static-server.js';
import { freePort, makeWorkspace, writeManifest } from '../test/helpers.js';

const SIZES = [10, 300];
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50);
const here = path.dirname(fileURLToPath(import.meta.url));

interface Figures {
  models: number;
  readySeconds: number;
  statusMs: { median: number; p95: number };
  perJobMs: number;
  boardPageMs: number;
  boardApiMs: number;
  redisBytes: number;
  statusBytes: number;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function measure(models: number): Promise<Figures> {
  const files: Record<string, { body: Buffer }> = {};
  for (let i = 0; i < models; i++) files[`/m/model-${i}.safetensors`] = { body: randomBytes(4096) };
  const hub = await startStaticServer(files);
  const ws = await makeWorkspace();
  const manifest = await writeManifest(`[models.loras]\n${Object.keys(files).map((p, i) => `m${i} = "${hub.url(p)}"`).join('\n')}\n`);
  const config = await loadConfig({
    PATH: process.env.PATH ?? '',
    COMFYUI_PYTHON: 'python3',
    WORKSPACE: ws.dir,
    PHOENIX_PORT: String(await freePort()),
    COMFYUI_PORT: String(await freePort()),
    PHOENIX_PASSWORD: 'bench-password',
    DOWNLOAD_CONCURRENCY: '8',
    PROVISION_URL: manifest,
  });
  const auth = { authorization: `Basic ${Buffer.from('admin:bench-password').toString('base64')}` };
  const started = Date.now();
  const stack = await up(config, pino({ level: 'silent' }));
  try {
    const get = (route: string) => fetch(`${stack.board.url}${route}`, { headers: auth }).then((r) => r.text());
    // Looked at twice a second: each look at hundreds of models costs the stack under test.
    for (;;) {
      const s = JSON.parse(await get('/status')) as { ready: boolean; models: { state: string }[] };
      if (s.ready && s.models.length === models && s.models.every((m) => m.state === 'ready')) break;
      if (Date.now() - started > 600_000) throw new Error(`${models} models not ready after 10 minutes`);
      await sleep(500);
    }
    const readySeconds = (Date.now() - started) / 1000;
    for (let i = 0; i < 5; i++) await get('/status');
    const samples: number[] = [];
    let statusBytes = 0;
    for (let i = 0; i < REQUESTS; i++) samples.push(await timeMs(async () => (statusBytes = (await get('/status')).length)));

    const redis = new Redis({ path: path.join(config.stateDir, 'redis.sock') });
    const queues = openQueues(redis);
    const perJob: number[] = [];
    for (let i = 0; i < 10; i++) perJob.push(await timeMs(() => perJobStatus(queues)));
    const info = await redis.info('memory');
    const redisBytes = Number(/used_memory:(\d+)/.exec(info)![1]);
    await queues.close();
    redis.disconnect();

    const page: number[] = [];
    const api: number[] = [];
    for (let i = 0; i < 10; i++) {
      page.push(await timeMs(() => get('/board/')));
      api.push(await timeMs(() => get('/board/api/queues?activeQueue=download&status=completed&page=1')));
    }
    return {
      models,
      readySeconds,
      statusMs: { median: percentile(samples, 50), p95: percentile(samples, 95) },
      perJobMs: percentile(perJob, 50),
      boardPageMs: percentile(page, 50),
      boardApiMs: percentile(api, 50),
      redisBytes,
      statusBytes,
    };
  } finally {
    await stack.stop();
    await hub.close();
    await ws.cleanup();
  }
}

/** What /status read before: the organize jobs, then per model its download job and both states. */
async function perJobStatus(queues: ReturnType<typeof openQueues>): Promise<void> {
  const organize = await queues.queue.organize.getJobs(['active', 'waiting', 'waiting-children', 'delayed', 'prioritized', 'completed', 'failed'], 0, 999, true);
  await Promise.all(
    organize.map(async (job) => {
      const download = await queues.queue.download.getJob(jobIds.download((job.data as ModelJobData).id));
      await Promise.all([job.getState(), download?.getState()]);
    }),
  );
}

async function main(): Promise<void> {
  const rows: Figures[] = [];
  for (const n of SIZES) rows.push(await measure(n));
  const [small, large] = [rows[0]!, rows[1]!];
  const perModel = (large.redisBytes - small.redisBytes) / (large.models - small.models);
  const lines = [
    `${os.cpus().length} CPUs, node ${process.version}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${REQUESTS} sequential GET /status each`,
    '',
    '| models | ready after | /status median | /status p95 | /status size | per-job reads (before) | Bull Board page | Bull Board queue API | Redis used_memory |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.models} | ${r.readySeconds.toFixed(1)} s | ${r.statusMs.median.toFixed(1)} ms | ${r.statusMs.p95.toFixed(1)} ms | ${(r.statusBytes / 1024).toFixed(0)} KiB | ` +
        `${r.perJobMs.toFixed(1)} ms | ${r.boardPageMs.toFixed(1)} ms | ${r.boardApiMs.toFixed(1)} ms | ${(r.redisBytes / 2 ** 20).toFixed(2)} MiB |`,
    ),
    '',
    `/status at ${large.models} models: ${large.statusMs.median.toFixed(1)} ms median (target < 50 ms), ${(large.statusMs.median / small.statusMs.median).toFixed(2)} × the time at ${small.models} models; ` +
      `reading the queues per job instead took ${large.perJobMs.toFixed(1)} ms (${(large.perJobMs / small.perJobMs).toFixed(2)} ×).`,
    `Redis memory per model (organize + download job, their logs and events): ${(perModel / 1024).toFixed(1)} KiB, from the difference between the two runs.`,
  ];
  const text = lines.join('\n');
  console.log(text);
  await writeFile(path.join(here, 'SCALE.md'), `# Scale benchmark\n\nMeasured ${new Date().toISOString()} by \`npm run bench:scale\`.\n\n${text}\n`);
}

await main();
process.exit(0);
