import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createFileOnce, writeFileAtomically } from '../lib/fs.js';

/** The key file's name in Phoenix's state folder. */
export const RECORD_KEY_FILE = 'record.key';

const KEY_BYTES = 32;

/**
 * The pod's key for the verified-files record: random bytes in Phoenix's state folder, readable by
 * Phoenix's user alone (mode 600 in a 700 folder). Anyone who can edit the record but not read
 * this key (FileBrowser's user, a custom node) cannot write an entry Phoenix accepts.
 */
export class RecordKey {
  private key: Promise<Buffer> | undefined;

  constructor(readonly file: string) {}

  /** The key's bytes (made on first use). */
  bytes(): Promise<Buffer> {
    return this.load();
  }

  /**
   * Puts another key in place of this one (pods that share a volume share one key), replacing the
   * file atomically.
   */
  async replace(key: Buffer): Promise<void> {
    if (key.length !== KEY_BYTES) throw new Error(`a record key has ${KEY_BYTES} bytes, not ${key.length}`);
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    await writeFileAtomically(this.file, key, { mode: 0o600 });
    this.key = Promise.resolve(key);
  }

  /** HMAC-SHA256 of the fields, in hex. */
  async sign(fields: readonly (string | number)[]): Promise<string> {
    return createHmac('sha256', await this.load()).update(JSON.stringify(fields)).digest('hex');
  }

  private load(): Promise<Buffer> {
    this.key ??= this.readOrCreate().catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }

  private async readOrCreate(): Promise<Buffer> {
    const existing = await this.read();
    if (existing) return existing;
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    // When another process creates it first, its key is the one everybody uses.
    await createFileOnce(this.file, randomBytes(KEY_BYTES), { mode: 0o600 });
    const created = await this.read();
    if (!created) throw new Error(`cannot create the verified-files record key ${this.file}`);
    return created;
  }

  /** The key, or undefined when there is none yet. A key of the wrong length is an error, not replaced. */
  private async read(): Promise<Buffer | undefined> {
    let key: Buffer;
    try {
      key = await readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`cannot read the verified-files record key ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    if (key.length !== KEY_BYTES) throw new Error(`${this.file} is not a record key (${key.length} bytes, not ${KEY_BYTES}); remove it to make a new one`);
    return key;
  }
}
