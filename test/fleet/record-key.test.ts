import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adoptFleetRecordKey } from '../../src/fleet/record-key.js';
import { RecordKey } from '../../src/organize/record-key.js';
import { startTestRedis, type TestRedis } from '../fixtures/redis.js';

describe("the fleet's record key", () => {
  let redis: TestRedis;
  let conn: Redis;
  let dir: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    conn = new Redis({ path: redis.socket });
    dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-fleet-key-'));
  });
  afterAll(async () => {
    conn.disconnect();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is the first pod\'s key, which every later pod adopts in its own key file', async () => {
    const first = new RecordKey(path.join(dir, 'a', 'record.key'));
    const second = new RecordKey(path.join(dir, 'b', 'record.key'));
    const before = await second.bytes();
    await adoptFleetRecordKey(conn, '{fleet-test}', first);
    await adoptFleetRecordKey(conn, '{fleet-test}', second);
    const shared = await first.bytes();
    expect(shared.equals(before)).toBe(false);
    expect((await second.bytes()).equals(shared)).toBe(true);
    expect((await readFile(path.join(dir, 'b', 'record.key'))).equals(shared)).toBe(true);
    expect((await stat(path.join(dir, 'b', 'record.key'))).mode & 0o777).toBe(0o600);
    // Entries one pod signs, the other accepts.
    expect(await new RecordKey(path.join(dir, 'b', 'record.key')).sign(['x', 1])).toBe(await first.sign(['x', 1]));
  });
});
