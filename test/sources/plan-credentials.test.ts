import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlan } from '../../src/commands/plan.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { configInTempWorkspace } from '../fixtures/source-context.js';
import { writeManifest } from '../helpers.js';

/** `phoenix plan` prints URLs with their credentials as ***, and no secret value anywhere. */
describe('phoenix plan and credentials inside URLs', () => {
  let server: StaticServer;
  const cleanups: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    server = await startStaticServer({});
  });
  afterAll(async () => {
    await Promise.all(cleanups.map((c) => c()));
    await server.close();
  });

  for (const json of [false, true]) {
    it(`hides them in ${json ? 'JSON' : 'text'} output, error messages included`, async () => {
      const { config, cleanup } = await configInTempWorkspace({
        COMFY_CUSTOM_NODE_GIT_URLS: 'https://deploy:node-secret-pw1@git.example/o/Private-Node.git@v1',
        PROVISION_URL: await writeManifest(`[models.loras]\nmissing = "${server.url('/gone.safetensors')}?token=plan-secret-tok2"\n`),
      });
      cleanups.push(cleanup);
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      expect(await runPlan(config, pino({ level: 'silent' }), json, out)).toBe(1);
      const text = Buffer.concat(chunks).toString();
      expect(text).not.toContain('node-secret-pw1');
      expect(text).not.toContain('plan-secret-tok2');
      expect(text).toContain('https://***@git.example/o/Private-Node.git');
      expect(text).toMatch(/HTTP 404/);
    });
  }
});
