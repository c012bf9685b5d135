import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podStatus } from '../../src/board/status.js';
import { PodState } from '../../src/comfyui/pod-state.js';
import type { Config } from '../../src/config/index.js';
import { createLogger } from '../../src/lib/log.js';
import { produce } from '../../src/producer/produce.js';
import { openQueues, type Queues } from '../../src/queue/queues.js';
import { withConfiguredSecrets } from '../../src/workers/configured.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { GitHost } from '../fixtures/git-repos.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { comfyPorts, eventually, failure, makeWorkspace, testConfig, writeManifest, type Workspace } from '../helpers.js';

/** Every value stored in Redis under a prefix, as text. */
async function redisDump(conn: Redis, prefix: string): Promise<string> {
  const out: string[] = [];
  for (const key of await conn.keys(`${prefix}:*`)) {
    const type = await conn.type(key);
    if (type === 'string') out.push(String(await conn.get(key)));
    else if (type === 'hash') out.push(JSON.stringify(await conn.hgetall(key)));
    else if (type === 'list') out.push(JSON.stringify(await conn.lrange(key, '0', '-1')));
    else if (type === 'zset') out.push(JSON.stringify(await conn.zrange(key, '0', '-1')));
    else if (type === 'set') out.push(JSON.stringify(await conn.smembers(key)));
    else if (type === 'stream') out.push(JSON.stringify(await conn.xrange(key, '-', '+')));
    out.push(key);
  }
  return out.join('\n');
}

describe('credentials inside URLs', () => {
  const gitPassword = 'git-secret-password-1';
  const modelPassword = 'model-secret-password-2';
  const queryToken = 'query-secret-token-3';
  const secrets = [gitPassword, modelPassword, queryToken];
  let redis: TestRedis;
  let git: GitHost;
  let files: StaticServer;
  let ws: Workspace;
  let config: Config;
  let conn: Redis;
  let workers: RunningWorkers;
  let queues: Queues;
  const logs: Buffer[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    git = await GitHost.start({ basicAuth: { username: 'deploy', password: gitPassword } });
    await git.createRepo('Private-Node', { '__init__.py': 'NODE_CLASS_MAPPINGS = {}\n' });
    files = await startStaticServer({
      '/m/basic.safetensors': { body: randomBytes(5000), authorization: `Basic ${Buffer.from(`modeluser:${modelPassword}`).toString('base64')}` },
      '/m/query.safetensors': { body: randomBytes(5000) },
    });
    ws = await makeWorkspace();
    const origin = new URL(files.origin);
    config = await testConfig({
      WORKSPACE: ws.dir,
      ...(await comfyPorts()),
      DOWNLOAD_ATTEMPTS: '1',
      COMFY_CUSTOM_NODE_GIT_URLS: git.baseUrl.replace('http://', `http://deploy:${gitPassword}@`) + '/Private-Node.git',
      PROVISION_URL: await writeManifest(`
[models.loras]
basic = "http://modeluser:${modelPassword}@${origin.host}/m/basic.safetensors"
query = "${files.url('/m/query.safetensors')}?token=${queryToken}&v=1"
`),
    });
    const stream = new PassThrough();
    stream.on('data', (c: Buffer) => logs.push(c));
    const log = createLogger({ secrets: config.secrets, debug: true, destination: stream });
    conn = new Redis({ path: redis.socket, maxRetriesPerRequest: null });
    workers = startWorkers({ config, connection: conn, log, prefix: 'creds' });
    queues = openQueues(conn, 'creds');
    await produce({ config, queues, connection: conn, log });
    await eventually(async () => ((await podStatus(config, queues, new PodState(conn, 'creds'))).ready ? true : undefined), 30_000, 'ready');
  });
  afterAll(async () => {
    await workers.close(5000);
    await queues.close();
    conn.disconnect();
    await git.close();
    await files.close();
    await redis.stop();
    await ws.cleanup();
  });

  it('downloads with them and clones with them', async () => {
    const status = await podStatus(config, queues, new PodState(conn, 'creds'));
    expect(status.models.map((m) => m.state)).toEqual(['ready', 'ready']);
    expect(status.nodes).toEqual([expect.objectContaining({ name: 'Private-Node', state: 'installed' })]);
    expect(files.requests.some((r) => r.path.includes(`token=${queryToken}`))).toBe(true);
    // No COMFYUI_USER here: /status says so.
    expect(status.isolation).toEqual({ user: null, mode: 'none', reason: 'COMFYUI_USER is not set' });
  });

  it('keeps them out of Redis, /status, the logs and .git/config', async () => {
    const stored = await redisDump(conn, 'creds');
    const status = JSON.stringify(await podStatus(config, queues, new PodState(conn, 'creds')));
    const gitConfig = await readFile(path.join(ws.comfyDir, 'custom_nodes', 'Private-Node', '.git', 'config'), 'utf8');
    const logText = Buffer.concat(logs).toString();
    for (const secret of secrets) {
      expect(stored).not.toContain(secret);
      expect(status).not.toContain(secret);
      expect(gitConfig).not.toContain(secret);
      expect(logText).not.toContain(secret);
    }
    expect(stored).toContain('token=***');
    expect(status).toContain(`http://***@${new URL(git.baseUrl).host}/Private-Node.git`);
    expect(gitConfig).toContain(`url = ${git.baseUrl}/Private-Node.git`);
  });

  it('refuses a stored URL with credential stand-ins that the configuration does not have', async () => {
    const err = await failure(Promise.resolve().then(() => withConfiguredSecrets(config, { source: 'url', url: 'https://***@elsewhere.example/x.safetensors' })));
    expect(err.message).toMatch(/carries credentials that only the pod's configuration holds/);
  });
});
