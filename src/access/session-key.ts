import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createFileOnce } from '../lib/fs.js';

const KEY_BYTES = 32;

/**
 * The key that signs session cookies: random bytes in `<stateDir>/session.key`, mode 600, made on
 * the first start and kept, so logins survive a restart of the board. It lives only in that file
 * and in the board's memory: never in the environment, a log line or Redis.
 */
export async function loadSessionKey(stateDir: string): Promise<Buffer> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, 'session.key');
  // Two starts at once end up with one key (the first to create it).
  await createFileOnce(file, randomBytes(KEY_BYTES), { mode: 0o600 });
  const key = await readFile(file);
  if (key.length < KEY_BYTES) {
    throw new Error(`${file} holds ${key.length} bytes, not ${KEY_BYTES}: remove it and restart (everyone signs in again)`);
  }
  // A key restored from a backup may come with looser rights.
  await chmod(file, 0o600);
  return key;
}
