import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCdnFixture, type CdnFixture } from '../fixtures/cdn-server.js';
import { allReady, comfyPids, sha256File, startUp, upEnv } from '../fixtures/pod.js';
import { startStaticServer, type StaticServer } from '../fixtures/static-server.js';
import { makeWorkspace, writeManifest, type Workspace } from '../helpers.js';

const SIZE = 12 * 1024 * 1024;
const PASSWORD = 'disk-full-password';
const asRoot = process.getuid?.() === 0;

/**
 * A disk that fills up mid-download: the model folder is a 16 MiB tmpfs mounted by the test (root
 * only; CI runs as root), filled by another file while the big model downloads.
 */
describe.skipIf(!asRoot)('a disk that fills up mid-download', () => {
  let cdn: CdnFixture;
  let hub: StaticServer;
  let ws: Workspace;
  let models: string;
  const small = randomBytes(300_000);

  beforeAll(async () => {
    cdn = await startCdnFixture({ files: { '/big.safetensors': SIZE }, faults: { bytesPerSecond: 512 * 1024 } });
    hub = await startStaticServer({ '/m/small.safetensors': { body: small } });
    ws = await makeWorkspace();
    models = path.join(ws.comfyDir, 'models');
    await mkdir(models);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', models]);
  });
  afterAll(async () => {
    await execa('umount', [models], { reject: false });
    await cdn.close();
    await hub.close();
    await ws.cleanup();
  });

  it('fails that model saying where and what to do, keeps its partial, starts ComfyUI, and resumes it when added again', { timeout: 120_000 }, async () => {
    const bigSpec = { source: 'url', url: cdn.url('/big.safetensors'), category: 'checkpoints' };
    const env = await upEnv(ws.dir, PASSWORD, {
      DOWNLOAD_CONNECTIONS: '4',
      PROVISION_URL: await writeManifest(`[models.checkpoints]\nbig = "${bigSpec.url}"\n[models.loras]\nsmall = "${hub.url('/m/small.safetensors')}"\n`),
    });
    const up = startUp(env, PASSWORD);
    try {
      await up.until(
        (s) => s.models.some((m) => m.name === 'small.safetensors' && m.state === 'ready') && s.models.some((m) => m.state === 'downloading' && m.bytesDone > SIZE / 4),
        60_000,
        'the small model ready and a quarter of the big one',
      );
      // Another file takes every byte left: the download's next write fails with ENOSPC.
      const filler = path.join(models, 'filler.bin');
      const { bavail, bsize } = await statfs(models);
      const fill = await writeFile(filler, Buffer.alloc(bavail * bsize + 4 * 1024 * 1024)).catch((err: NodeJS.ErrnoException) => err.code);
      expect(fill).toBe('ENOSPC');

      const failed = await up.until((s) => s.ready && s.models.some((m) => m.state === 'failed'), 60_000, 'the big model failed and ComfyUI up');
      const big = failed.models.find((m) => m.state === 'failed')!;
      expect(big.error).toMatch(
        new RegExp(`^download failed: disk full while downloading .*big\\.safetensors: ${models}/\\.phoenix-tmp has \\d+ bytes free \\(ENOSPC\\)\\. The .* already downloaded are kept\\. Free some space .* then add the model again \\(POST /api/models\\) or restart Phoenix`),
      );
      expect(failed.models.find((m) => m.name === 'small.safetensors')).toMatchObject({ state: 'ready' });
      expect(await comfyPids(ws.comfyDir)).toEqual([failed.comfyui.pid]);
      // The partial and its resume sidecar are kept.
      const temp = path.join(models, '.phoenix-tmp');
      const kept = (await readdir(temp)).sort();
      expect(kept).toEqual([expect.stringMatching(/--big\.safetensors\.part$/), expect.stringMatching(/--big\.safetensors\.part\.state$/)]);
      const sidecar = JSON.parse(await readFile(path.join(temp, kept[1]!), 'utf8')) as { done: [number, number][] };
      const keptBytes = sidecar.done.reduce((n, [a, b]) => n + b - a, 0);
      expect(keptBytes).toBeGreaterThanOrEqual(SIZE / 8);

      // Space comes back; adding the model again resumes it.
      await rm(filler);
      const servedBefore = cdn.bytesServed;
      const resumedAt = Date.now();
      const again = await fetch(`http://127.0.0.1:${env.PHOENIX_PORT}/api/models`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify(bigSpec),
      });
      expect(again.status).toBe(202);
      expect(((await again.json()) as { models: { status: string }[] }).models).toMatchObject([{ status: 'queued' }]);
      const done = await up.until(allReady(2), 60_000, 'the big model after space came back');
      const fetchedAgain = cdn.bytesServed - servedBefore;
      console.log(
        `disk full: the resumed model was ready ${((Date.now() - resumedAt) / 1000).toFixed(1)} s after POST /api/models; fetched ${fetchedAgain} of ${SIZE - keptBytes} missing bytes`,
      );
      expect(fetchedAgain).toBeLessThanOrEqual(1.35 * (SIZE - keptBytes));
      expect(await sha256File(done.models.find((m) => m.name === 'big.safetensors')!.path!)).toBe(cdn.sha256('/big.safetensors'));
      expect(await sha256File(done.models.find((m) => m.name === 'small.safetensors')!.path!)).toBe(createHash('sha256').update(small).digest('hex'));
      expect(done.comfyui.pid).toBe(failed.comfyui.pid);
      expect(await readdir(temp)).toEqual([]);
    } finally {
      expect(await up.stop()).toBe(0);
    }
  });
});
