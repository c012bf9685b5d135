import type { RedisClient } from '../lib/redis-client.js';
import type { RecordKey } from '../organize/record-key.js';

/**
 * Pods on a shared Redis may share a network volume, and with it the verified-files record beside
 * the models: they must sign its entries with one key, or each would take the others' entries for
 * forged ones and re-hash (or wait for) what is already verified. The first pod to start puts its
 * key in the fleet's Redis; every pod adopts that one. The shared Redis is reachable by Phoenix's
 * processes alone (never by ComfyUI's user, FileBrowser or a custom node), like the key file.
 */
export async function adoptFleetRecordKey(redis: RedisClient, fleetPrefix: string, key: RecordKey): Promise<void> {
  const name = `${fleetPrefix}:record-key`;
  const mine = await key.bytes();
  await redis.set(name, mine.toString('base64'), 'NX');
  const stored = await redis.get(name);
  if (stored === null) throw new Error(`the fleet's record key ${name} vanished from Redis`);
  const shared = Buffer.from(stored, 'base64');
  if (!shared.equals(mine)) await key.replace(shared);
}
