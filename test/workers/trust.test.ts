import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/index.js';
import { modelId, toStoredSpec } from '../../src/config/model-spec.js';
import { partPath } from '../../src/download/paths.js';
import { UserError } from '../../src/lib/errors.js';
import { publishFile } from '../../src/organize/publish.js';
import { VerifiedRecord } from '../../src/organize/record.js';
import { JobName, QueueName, type ModelJobData } from '../../src/queue/jobs.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { comfyPorts, eventually, failure, makeWorkspace, silentLog, testConfig, writeManifest, type Workspace } from '../helpers.js';

/** Job data is written by whoever reaches Redis: workers check it against the spec and the configuration. */
describe('workers never trust job data', () => {
  let redis: TestRedis;
  let trusted: StaticServer;
  let other: StaticServer;
  let ws: Workspace;
  let config: Config;
  let conn: Redis;
  let workers: RunningWorkers;
  let queue: Queue;
  const secret = 'Bearer header-secret-value';

  beforeAll(async () => {
    redis = await startTestRedis();
    trusted = await startStaticServer({ '/m/private.safetensors': { body: randomBytes(4096), authorization: secret } });
    other = await startStaticServer({ '/x/other.safetensors': { body: randomBytes(4096) } });
    ws = await makeWorkspace();
    config = await testConfig({
      WORKSPACE: ws.dir,
      ...(await comfyPorts()),
      DOWNLOAD_ATTEMPTS: '1',
      PROVISION_URL: await writeManifest(`
[models.loras.private]
source = "url"
url = "${trusted.url('/m/private.safetensors')}"
headers = { "Authorization" = "${secret}" }
`),
    });
    conn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    workers = startWorkers({ config, connection: conn, log: silentLog, prefix: 'trust' });
    queue = new Queue(QueueName.Download, { connection: conn, prefix: 'trust' });
  });
  afterAll(async () => {
    await workers.close(5000);
    await queue.close();
    conn.disconnect();
    await trusted.close();
    await other.close();
    await redis.stop();
    await ws.cleanup();
  });

  async function settle(data: ModelJobData, jobId: string): Promise<Job> {
    await queue.add(JobName.DownloadModel, data, { jobId, attempts: 1 });
    return eventually(async () => {
      const job = await queue.getJob(jobId);
      const state = await job?.getState();
      return state === 'failed' || state === 'completed' ? job : undefined;
    }, 15_000, `job ${jobId} to finish`);
  }

  const privateSpec = () => config.models[0]!.spec;
  const otherSpec = () => ({ source: 'url' as const, url: other.url('/x/other.safetensors'), category: 'loras' as const });

  it('refuses a job whose id is a header-bearing model\'s but whose URL is another, and sends that URL nothing', async () => {
    const job = await settle({ id: modelId(privateSpec()), origin: 'forged', label: 'x', spec: otherSpec() }, 'forged-id');
    expect(await job.getState()).toBe('failed');
    expect(job.failedReason).toMatch(/refusing a forged or stale job/);
    expect(other.requests).toEqual([]);
  });

  it('sends no secret header with a job for another URL, even one with its own honest id', async () => {
    const job = await settle({ id: modelId(otherSpec()), origin: 'api', label: 'x', spec: otherSpec() }, 'honest-other');
    expect(await job.getState()).toBe('completed');
    expect(other.requests.length).toBeGreaterThan(0);
    expect(other.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
  });

  it('still sends the header to the configured model\'s own URL', async () => {
    const spec = toStoredSpec(privateSpec());
    const job = await settle({ id: modelId(spec), origin: 'manifest', label: 'x', spec }, 'configured');
    expect(job.failedReason ?? null).toBeNull();
    expect(trusted.requests.some((r) => r.headers.authorization === secret)).toBe(true);
  });

  it('creates nothing outside the models folder for an id with ".."', async () => {
    // Every folder the id's ".." could climb to (other tests add and remove their own entries in
    // the shared temp folder meanwhile, so only names from this id count).
    const ancestors: string[] = [];
    for (let dir = config.modelsRoot; ; dir = path.dirname(dir)) {
      ancestors.push(dir);
      if (dir === path.dirname(dir)) break;
    }
    const escaped = async () => (await Promise.all(ancestors.map(async (dir) => (await readdir(dir)).filter((e) => e.includes('escape')).map((e) => path.join(dir, e))))).flat();
    const before = await escaped();
    const job = await settle({ id: '../../../escape', origin: 'forged', label: 'x', spec: otherSpec() }, 'dotdot');
    expect(await job.getState()).toBe('failed');
    expect(await escaped()).toEqual(before);
    expect(await readdir(config.modelsRoot).catch(() => [])).not.toContain('escape');
    expect(() => partPath(config.modelsRoot, '../../escape', 'a.safetensors')).toThrow(/outside/);
  });

  it('publishes only the model\'s own temp file, and looks at already-published files only inside a model folder', async () => {
    const record = new VerifiedRecord(config.modelsRoot, path.join(config.stateDir, 'record.key'));
    const base = { modelId: 'url-a-1', category: 'loras', modelsRoot: config.modelsRoot, overwrite: false, record };
    const file = { name: 'a.safetensors', bytes: 1, sha256: 'a'.repeat(64) };
    const wrongTemp = await failure(publishFile({ ...base, file: { ...file, tempPath: path.join(ws.dir, 'elsewhere.part') } }));
    expect(wrongTemp).toBeInstanceOf(UserError);
    expect(wrongTemp.message).toMatch(/not the temp file of a\.safetensors/);
    const wrongPublished = await failure(publishFile({ ...base, file: { ...file, publishedPath: path.join(ws.dir, '.phoenix', 'record.key') } }));
    expect(wrongPublished.message).toMatch(/not a file in a model folder/);
  });
});
