import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, rm, statfs, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discardPartial, downloadFile, type DownloadFileOptions } from '../../src/download/engine.js';
import { TransientError, UserError } from '../../src/lib/errors.js';
import { type CdnFixture, startCdnFixture } from '../fixtures/cdn-server.js';

const MB = 1024 * 1024;
const SIZE = 6 * MB + 12_345;
let cdn: CdnFixture;
let dir: string;
let expectedSha: string;

beforeAll(async () => {
  cdn = await startCdnFixture({ files: { '/model.safetensors': SIZE } });
  expectedSha = cdn.sha256('/model.safetensors');
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-engine-'));
});
afterAll(async () => {
  await cdn.close();
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  cdn.setFaults({});
  cdn.requests.length = 0;
});

let counter = 0;
function options(extra: Partial<DownloadFileOptions> = {}): DownloadFileOptions {
  counter++;
  return {
    request: { url: cdn.url('/model.safetensors'), headers: {} },
    partPath: path.join(dir, '.phoenix-tmp', `m${counter}--model.safetensors.part`),
    expectedBytes: SIZE,
    expectedSha256: expectedSha,
    connections: 4,
    stallTimeoutMs: 10_000,
    ...extra,
  };
}

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

describe('downloadFile', () => {
  it('stops at a part file it cannot look at instead of discarding it as absent', async () => {
    const opts = options();
    await mkdir(path.dirname(opts.partPath), { recursive: true });
    await symlink(path.basename(opts.partPath), opts.partPath);
    await expect(downloadFile(opts)).rejects.toMatchObject({ code: 'ELOOP' });
    expect((await lstat(opts.partPath)).isSymbolicLink()).toBe(true);
    expect(cdn.requests).toHaveLength(0);
    await rm(opts.partPath);
  });

  it('fetches a file of unknown size in one request when the first request already covers it', async () => {
    const opts = options({ expectedBytes: undefined, segmentBytes: 64 * MB, connections: 1 });
    const result = await downloadFile(opts);
    expect(result).toMatchObject({ bytes: SIZE, sha256: expectedSha, ranged: true });
    expect(cdn.requests.filter((r) => r.path === '/model.safetensors')).toHaveLength(1);
  });

  it('downloads over parallel ranged connections and returns the verified sha256', async () => {
    const opts = options();
    const progress: number[] = [];
    cdn.setFaults({ bytesPerSecond: 1 * MB });
    const result = await downloadFile({ ...opts, onProgress: (p) => progress.push(p.bytesDone) });
    expect(result).toMatchObject({ bytes: SIZE, sha256: expectedSha, ranged: true });
    expect(await sha256Of(opts.partPath)).toBe(expectedSha);
    const ranged = cdn.requests.filter((r) => r.status === 206);
    expect(ranged.length).toBeGreaterThan(4);
    expect(new Set(ranged.map((r) => r.range)).size).toBe(ranged.length);
    expect(progress.length).toBeGreaterThan(0);

    // Until it is published the sidecar records the data complete: a run whose job was lost
    // finishes it again by re-hashing, without a request.
    expect(JSON.parse(await readFile(`${opts.partPath}.state`, 'utf8'))).toMatchObject({ total: SIZE, done: [[0, SIZE]] });
    const requests = cdn.requests.length;
    const again = await downloadFile(opts);
    expect(again).toMatchObject({ bytes: SIZE, sha256: expectedSha, resumedBytes: SIZE });
    expect(cdn.requests.length).toBe(requests);
  });

  it('resumes connections reset mid-body without fetching much twice', async () => {
    cdn.setFaults({ reset: { afterBytes: 200_000, times: 6 } });
    const before = cdn.bytesServed;
    const result = await downloadFile(options());
    expect(result.sha256).toBe(expectedSha);
    expect(cdn.bytesServed - before).toBeLessThan(1.5 * SIZE);
  });

  it('never accepts a corrupted byte: discards the data, and the next call succeeds', async () => {
    const opts = options();
    cdn.setFaults({ corruptByteAt: 3 * MB + 17 });
    const failure = await downloadFile(opts).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(TransientError);
    expect((failure as Error).message).toMatch(/sha256 .* expected .*discarded/);
    expect(existsSync(opts.partPath)).toBe(false);
    expect(existsSync(`${opts.partPath}.state`)).toBe(false);
    cdn.setFaults({});
    const result = await downloadFile(opts);
    expect(result.sha256).toBe(expectedSha);
  });

  it('drops a stalled connection and resumes it', async () => {
    cdn.setFaults({ stall: { afterBytes: 100_000, times: 1 } });
    const result = await downloadFile(options({ stallTimeoutMs: 300 }));
    expect(result.sha256).toBe(expectedSha);
  });

  it('honours Retry-After on 503', async () => {
    cdn.setFaults({ unavailable: { status: 503, times: 1, retryAfterSeconds: 1 } });
    const result = await downloadFile(options());
    expect(result.sha256).toBe(expectedSha);
    const [refused, next] = cdn.requests;
    expect(refused!.status).toBe(503);
    expect(next!.at - refused!.at).toBeGreaterThanOrEqual(950);
  });

  it('ends the call with retryAfterMs when Retry-After is longer than it waits', async () => {
    cdn.setFaults({ unavailable: { status: 429, times: 1, retryAfterSeconds: 120 } });
    const failure = await downloadFile(options()).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(TransientError);
    expect((failure as TransientError).retryAfterMs).toBe(120_000);
    expect(cdn.requests).toHaveLength(1);
  });

  it('falls back to one stream from byte 0 when the server ignores Range', async () => {
    cdn.setFaults({ noRange: true });
    const opts = options();
    const result = await downloadFile(opts);
    expect(result).toMatchObject({ bytes: SIZE, sha256: expectedSha, ranged: false });
    expect(cdn.requests.map((r) => r.status)).toEqual([200]);
    expect(await sha256Of(opts.partPath)).toBe(expectedSha);
  });

  it('rejects a 206 whose Content-Range is not what was asked', async () => {
    cdn.setFaults({ wrongContentRange: true });
    const failure = await downloadFile(options()).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(TransientError);
    expect((failure as Error).message).toMatch(/Content-Range/);
  });

  it('refuses before downloading when the disk cannot hold the file', async () => {
    const stats = await statfs(dir);
    const free = stats.bavail * stats.bsize;
    const failure = await downloadFile(options({ expectedBytes: free + 50 * 2 ** 30 })).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(UserError);
    expect((failure as Error).message).toMatch(/needs [\d.]+ GiB more, only [\d.]+ (GiB|MB) free/);
    expect(cdn.requests).toHaveLength(0);
  });

  it('starts over when the file changed on the server between calls', async () => {
    const opts = options({ segmentRetries: 0 });
    cdn.setFaults({ reset: { afterBytes: 300_000, times: 100 } });
    await expect(downloadFile(opts)).rejects.toBeInstanceOf(TransientError);
    expect(existsSync(`${opts.partPath}.state`)).toBe(true);
    cdn.setFaults({});
    cdn.setEtag('"v2"');
    try {
      const result = await downloadFile(opts);
      expect(result).toMatchObject({ sha256: expectedSha, resumedBytes: 0 });
    } finally {
      cdn.setEtag('"v1"');
    }
  });

  it('sends secret headers only to their origin', async () => {
    const result = await downloadFile(
      options({ request: { url: cdn.url('/model.safetensors'), headers: { authorization: 'Bearer t' }, headersOrigin: 'https://hub.example' } }),
    );
    expect(result.sha256).toBe(expectedSha);
    expect(cdn.requests.some((r) => r.authorization)).toBe(false);
    cdn.requests.length = 0;
    const url = cdn.url('/model.safetensors');
    await downloadFile(options({ request: { url, headers: { authorization: 'Bearer t' }, headersOrigin: new URL(url).origin } }));
    expect(cdn.requests.every((r) => r.authorization)).toBe(true);
  });

  it('discardPartial removes the part file and its sidecar', async () => {
    const opts = options({ segmentRetries: 0 });
    cdn.setFaults({ reset: { afterBytes: 300_000, times: 100 } });
    await expect(downloadFile(opts)).rejects.toBeInstanceOf(TransientError);
    await discardPartial(opts.partPath);
    expect(existsSync(opts.partPath)).toBe(false);
    expect(existsSync(`${opts.partPath}.state`)).toBe(false);
  });
});
