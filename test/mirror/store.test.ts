import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorConfig } from '../../src/config/index.js';
import { MirrorUnavailable, ModelMirror } from '../../src/mirror/store.js';
import { startTestS3, type TestS3 } from '../fixtures/s3-server.js';
import { failure, freePort } from '../helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

/** The model mirror against a local S3-compatible server, through the real AWS SDK. */
describe('the model mirror', () => {
  let s3: TestS3;
  let mirror: ModelMirror;
  let dir: string;
  const config = (endpoint: string): MirrorConfig => ({
    bucket: s3.bucket,
    prefix: 'models',
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });

  beforeAll(async () => {
    s3 = await startTestS3();
    mirror = new ModelMirror(config(s3.endpoint));
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-mirror-'));
  });
  afterAll(async () => {
    mirror.close();
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('names objects by their sha256 under the prefix and refuses anything else', () => {
    const hex = 'a'.repeat(64);
    expect(mirror.key(hex)).toBe(`models/sha256/${hex}`);
    expect(mirror.where(hex)).toBe(`s3://${s3.bucket}/models/sha256/${hex}`);
    expect(() => mirror.key('../../etc/passwd')).toThrow(/not a sha256/);
  });

  it('streams a growing file into a multipart upload that appears only when finished', async () => {
    const data = randomBytes(21 * MiB);
    const file = path.join(dir, 'growing.part');
    await writeFile(file, Buffer.alloc(0));
    const upload = mirror.upload(sha(data), file, { expectedBytes: data.length });
    for (let at = 0; at < data.length; at += 3 * MiB) {
      await appendFile(file, data.subarray(at, at + 3 * MiB));
      upload.grow(Math.min(data.length, at + 3 * MiB));
    }
    expect(await mirror.head(sha(data))).toBeUndefined();
    await upload.finish(data.length);
    expect(await mirror.head(sha(data))).toEqual({ bytes: data.length });
    expect(sha(await s3.get(mirror.key(sha(data))))).toBe(sha(data));
  });

  it('starts the upload over when the file is discarded and written again', async () => {
    const stale = randomBytes(17 * MiB);
    const fresh = randomBytes(18 * MiB);
    const file = path.join(dir, 'restarted.part');
    await writeFile(file, stale);
    const upload = mirror.upload(sha(fresh), file, { expectedBytes: fresh.length });
    upload.grow(stale.length);
    await rm(file);
    await writeFile(file, fresh);
    upload.grow(0);
    upload.grow(fresh.length);
    await upload.finish(fresh.length);
    expect(sha(await s3.get(mirror.key(sha(fresh))))).toBe(sha(fresh));
  });

  it('puts a small file in one request, and leaves nothing behind an aborted upload', async () => {
    const small = randomBytes(300_000);
    const file = path.join(dir, 'small.part');
    await writeFile(file, small);
    await mirror.upload(sha(small), file).finish(small.length);
    expect(await s3.get(mirror.key(sha(small)))).toEqual(small);

    const big = randomBytes(10 * MiB);
    const bigFile = path.join(dir, 'aborted.part');
    await writeFile(bigFile, big);
    const aborted = mirror.upload(sha(big), bigFile);
    aborted.grow(big.length);
    await aborted.abort();
    expect(await mirror.head(sha(big))).toBeUndefined();
    expect(await s3.keys()).not.toContain(mirror.key(sha(big)));
  });

  it('says it is unavailable, rather than absent, when the endpoint does not answer', async () => {
    const down = new ModelMirror(config(`http://127.0.0.1:${await freePort()}`));
    try {
      const err = await failure(down.head('b'.repeat(64)));
      expect(err).toBeInstanceOf(MirrorUnavailable);
      expect(err.message).toMatch(/did not answer/);
    } finally {
      down.close();
    }
  });
});
