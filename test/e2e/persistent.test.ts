import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PodStatus } from '../../src/board/status.js';
import { up } from '../../src/runtime/up.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { comfyPorts, eventually, freePort, makeWorkspace, silentLog, testConfig, writeManifest } from '../helpers.js';

/** PERSISTENT_STORAGE: a brand-new container (fresh ComfyUI dir, fresh Redis) on the same volume. */
describe('persistent storage', () => {
  let hub: StaticServer;
  let volume: string;

  beforeAll(async () => {
    hub = await startStaticServer({
      '/m/big.safetensors': { body: randomBytes(2_000_000) },
      '/m/lora.safetensors': { body: randomBytes(100_000) },
    });
    volume = await mkdtemp(path.join(os.tmpdir(), 'phoenix-volume-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(volume, { recursive: true, force: true });
  });

  async function boot(): Promise<{ status: PodStatus; comfyDir: string; stop(): Promise<void> }> {
    const ws = await makeWorkspace();
    const config = await testConfig({
      WORKSPACE: ws.dir,
      PERSISTENT_STORAGE: volume,
      PHOENIX_PORT: String(await freePort()),
      ...(await comfyPorts()),
      PHOENIX_PASSWORD: 'volume-password',
      PROVISION_URL: await writeManifest(
        `[models.checkpoints]\nbig = "${hub.url('/m/big.safetensors')}"\n[models.loras]\nlora = "${hub.url('/m/lora.safetensors')}"\n`,
      ),
    });
    const stack = await up(config, silentLog, { prefix: `vol${process.pid}` });
    const auth = { authorization: `Basic ${Buffer.from('admin:volume-password').toString('base64')}` };
    const status = await eventually(async () => {
      const s = (await (await fetch(`${stack.board.url}/status`, { headers: auth })).json()) as PodStatus;
      return s.ready ? s : undefined;
    }, 60_000, 'ready');
    return {
      status,
      comfyDir: ws.comfyDir,
      stop: async () => {
        await stack.stop();
        await ws.cleanup();
      },
    };
  }

  it('keeps models on the volume, and a new container downloads nothing', { timeout: 120_000 }, async () => {
    const first = await boot();
    expect(first.status.models.map((m) => m.path).sort()).toEqual([
      path.join(volume, 'models/checkpoints/big.safetensors'),
      path.join(volume, 'models/loras/lora.safetensors'),
    ]);
    await first.stop();
    const served = [...hub.served.values()].reduce((a, b) => a + b, 0);

    // A new container with a new state folder has a new record key: the volume's files are
    // re-hashed where they are (the source is asked for their size), never downloaded again.
    const second = await boot();
    expect(second.status.models.every((m) => m.state === 'ready')).toBe(true);
    expect([...hub.served.values()].reduce((a, b) => a + b, 0) - served).toBeLessThanOrEqual(2);
    // ComfyUI finds the volume's models through extra_model_paths.yaml beside its main.py.
    const yaml = await readFile(path.join(second.comfyDir, 'extra_model_paths.yaml'), 'utf8');
    expect(yaml).toContain(`base_path: ${JSON.stringify(volume)}`);
    expect(yaml).toMatch(/checkpoints: models\/checkpoints/);
    await second.stop();
  });
});
