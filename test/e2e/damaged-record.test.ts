import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allReady, comfyPids, sha256File, startUp, upEnv } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const PASSWORD = 'damaged-record-pw';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * `phoenix up` restarted over a verified-files record that was damaged in between: truncated,
 * unreadable as a record (binary garbage), or written by an older version. Every start is ready
 * without a model byte fetched again: the files in place are re-hashed and recorded again.
 */
describe('phoenix up over a damaged verified-files record', () => {
  let hub: StaticServer;
  let ws: Workspace;
  const files = { '/m/a.safetensors': randomBytes(2_000_000), '/m/b.safetensors': randomBytes(500_000), '/m/c.safetensors': randomBytes(200_000) };

  beforeAll(async () => {
    hub = await startStaticServer(Object.fromEntries(Object.entries(files).map(([p, body]) => [p, { body }])));
    ws = await makeWorkspace();
  });
  afterAll(async () => {
    await hub.close();
    await ws.cleanup();
  });

  it('re-hashes what is on disk instead of downloading it, whatever the damage', { timeout: 150_000 }, async () => {
    const env = await upEnv(ws.dir, PASSWORD, {
      PROVISION_URL: await writeManifest(
        `[models.checkpoints.a]\nsource = "url"\nurl = "${hub.url('/m/a.safetensors')}"\nsha256 = "${sha(files['/m/a.safetensors'])}"\n` +
          `[models.loras]\nb = "${hub.url('/m/b.safetensors')}"\n[models.vae]\nc = "${hub.url('/m/c.safetensors')}"\n`,
      ),
    });
    const record = path.join(ws.comfyDir, 'models/.phoenix-verified.json');
    const served = () => [...hub.served.values()].reduce((a, b) => a + b, 0);
    const first = startUp(env, PASSWORD);
    await first.until(allReady(3), 60_000, 'ready');
    expect(await first.stop()).toBe(0);
    const whole = await readFile(record, 'utf8');
    const entries = Object.values((JSON.parse(whole) as { files: Record<string, { path: string; bytes: number; sha256: string }> }).files);

    const damages: Record<string, string | Buffer> = {
      truncated: whole.slice(0, Math.floor(whole.length / 2)),
      unreadable: randomBytes(4096),
      'an older version': JSON.stringify({ files: entries.map((e) => ({ path: e.path, size: e.bytes, sha256: e.sha256 })) }),
    };
    for (const [damage, text] of Object.entries(damages)) {
      await writeFile(record, text);
      const before = served();
      const startedAt = Date.now();
      const up = startUp(env, PASSWORD);
      const status = await up.until(allReady(3), 60_000, `ready over a record that is ${damage}`);
      console.log(`damaged record (${damage}): ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s, ${served() - before} bytes fetched (one-byte probes)`);
      // Only the one-byte probes that resolve each model's size went out.
      expect(served() - before, damage).toBeLessThanOrEqual(3);
      for (const m of status.models) expect(await sha256File(m.path!), `${damage}: ${m.name}`).toBe(sha(files[`/m/${m.name}` as keyof typeof files]));
      expect(await comfyPids(ws.comfyDir)).toEqual([status.comfyui.pid]);
      expect(up.output(), damage).toMatch(/"msg":"the verified-files record was damaged or from an older version and is kept aside; files already in place are re-hashed instead of downloaded"/);
      const rebuilt = JSON.parse(await readFile(record, 'utf8')) as { files: Record<string, { sha256: string }> };
      expect(Object.values(rebuilt.files).map((e) => e.sha256).sort(), damage).toEqual(entries.map((e) => e.sha256).sort());
      expect(await up.stop()).toBe(0);
    }
    const aside = (await readdir(path.dirname(record))).filter((n) => n.startsWith('.phoenix-verified.json.damaged-'));
    expect(aside).toHaveLength(3);
  });
});
