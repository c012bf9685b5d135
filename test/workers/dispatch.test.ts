import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redactor } from '../../src/lib/log.js';
import { JobName, QueueName } from '../../src/queue/jobs.js';
import type { WorkerDeps } from '../../src/workers/context.js';
import { dispatch, type HandlerTable } from '../../src/workers/index.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';

describe('dispatch', () => {
  let redis: TestRedis;
  let queue: Queue;

  beforeAll(async () => {
    redis = await startTestRedis();
    queue = new Queue(QueueName.Download, { connection: { path: redis.socket }, prefix: 'dispatch-test' });
  });
  afterAll(async () => {
    await queue.close();
    await redis.stop();
  });

  /** A handler table whose download handler records what it was given. */
  function recording(): { handlers: HandlerTable; seen: unknown[] } {
    const seen: unknown[] = [];
    const fail = async (): Promise<never> => {
      throw new Error('not this one');
    };
    const handlers: HandlerTable = {
      [JobName.DownloadModel]: async (_job, data) => {
        seen.push(data);
        return data;
      },
      [JobName.OrganizeModel]: fail,
      [JobName.InstallNode]: fail,
      [JobName.InstallPythonPackages]: fail,
      [JobName.StartComfyUI]: fail,
      [JobName.DeliverWebhook]: fail,
    };
    return { handlers, seen };
  }

  const deps = { redactor: new Redactor(['secret-value-1']) } as unknown as WorkerDeps;

  it('hands the handler the parsed payload, not the raw job data', async () => {
    // As anyone with Redis access (or a writable board) could store it: a number for the id, an
    // upper-case pin and a stray field.
    const raw = {
      id: 'civitai-58390-abc',
      origin: 'api',
      label: 'civitai:58390',
      spec: { source: 'civitai', versionId: 58390, sha256: 'AB'.repeat(32) },
      stray: 'ignored',
    };
    const job = await queue.add(JobName.DownloadModel, raw);
    const { handlers, seen } = recording();
    await dispatch(job, QueueName.Download, deps, handlers);
    expect(seen).toEqual([
      { id: 'civitai-58390-abc', origin: 'api', label: 'civitai:58390', spec: { source: 'civitai', versionId: '58390', sha256: 'ab'.repeat(32) } },
    ]);
  });

  it('refuses a payload its schema rejects, without running the handler', async () => {
    const job = await queue.add(JobName.DownloadModel, { id: 'x', origin: 'api', label: 'x', spec: { source: 'ftp', url: 'ftp://x' } });
    const { handlers, seen } = recording();
    await expect(dispatch(job, QueueName.Download, deps, handlers)).rejects.toThrow(/invalid job data/);
    expect(seen).toEqual([]);
  });
});
