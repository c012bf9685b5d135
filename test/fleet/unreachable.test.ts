import { existsSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { up, type Stack } from '../../src/runtime/up.js';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { comfyPorts, eventually, freePort, makeWorkspace, testConfig, writeManifest, type Workspace } from '../helpers.js';

/** A pod whose shared Redis and mirror are both unreachable at start still provisions, from the origins. */
describe('a fleet pod cut off from the fleet', () => {
  let cdn: CdnFixture;
  let ws: Workspace;
  let stack: Stack | undefined;

  beforeAll(async () => {
    cdn = await startCdnFixture({ files: { '/alone.safetensors': 512 * 1024 } });
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await stack?.stop();
    await ws.cleanup();
    await cdn.close();
  });

  it('provisions alone on its own Redis and fetches from the origin', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => { lines.push(chunk.toString()); done(); } }));
    const port = await freePort();
    const config = await testConfig({
      WORKSPACE: ws.dir,
      PHOENIX_PORT: String(port),
      ...(await comfyPorts()),
      PHOENIX_PASSWORD: 'cut-off-password',
      PHOENIX_POD_ID: 'cut-off',
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      MODEL_MIRROR: 's3://phoenix-models/m',
      MODEL_MIRROR_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
      AWS_ACCESS_KEY_ID: 'key-id-cut-off',
      AWS_SECRET_ACCESS_KEY: 'secret-cut-off',
      PROVISION_URL: await writeManifest(
        `[models.loras.alone]\nsource = "url"\nurl = "${cdn.url('/alone.safetensors')}"\nsha256 = "${cdn.sha256('/alone.safetensors')}"\n`,
      ),
    });
    stack = await up(config, log, { sharedRedisWaitMs: 1000 });
    const auth = { authorization: `Basic ${Buffer.from('admin:cut-off-password').toString('base64')}` };
    const ready = await eventually(async () => {
      const s = (await (await fetch(`http://127.0.0.1:${port}/status`, { headers: auth })).json()) as PodStatus;
      return s.ready && s.models[0]?.state === 'ready' ? s : undefined;
    }, 40_000, 'ready without the fleet');
    expect(ready.models[0]!.sha256).toBe(cdn.sha256('/alone.safetensors'));
    expect(existsSync(path.join(ws.dir, '.phoenix/redis.sock'))).toBe(true);
    expect(lines.join('')).toContain('the shared Redis cannot be reached: this pod provisions alone');
    expect(lines.join('')).toContain('the model mirror cannot be read: fetching from the origin');
  });
});
