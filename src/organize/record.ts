import { timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { withFileLock } from '../lib/file-lock.js';
import { isMissing, writeFileAtomically } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import { RecordKey } from './record-key.js';

/** One verified file: what it was checked to be, and how to tell it has not changed since. */
const VerifiedEntry = z.object({
  modelId: z.string(),
  /** Path relative to the models root. */
  path: z.string(),
  bytes: z.number(),
  mtimeMs: z.number(),
  sha256: z.string(),
  /** HMAC of the fields above with the pod's record key: an entry without a valid one is ignored. */
  mac: z.string(),
});
export type VerifiedEntry = z.output<typeof VerifiedEntry>;

/** Version 1 entries carried no MAC: such a record is set aside like a damaged one and its files re-hashed. */
const RecordSchema = z.object({ version: z.literal(2), files: z.record(z.string(), VerifiedEntry) });
type RecordFile = z.output<typeof RecordSchema>;

/** The record's file name, beside the model folders. */
export const RECORD_FILE = '.phoenix-verified.json';

/**
 * The record of verified files, kept beside the models (so it travels with a persistent volume).
 * A warm restart trusts an entry whose file still has the same size and mtime, without re-hashing;
 * a file that vanished or changed is provisioned again. Writes are serialised and atomic, and the
 * file is readable by Phoenix's user alone.
 *
 * Every entry is authenticated with the pod's record key (record-key.ts), which lives in Phoenix's
 * state folder, not beside the models: an entry edited, added or copied by anyone without the key
 * (through FileBrowser, by a custom node) is ignored, and so is one whose path leaves the models
 * folder. A caller that knows the sha256 the configuration pins passes it, and an entry with
 * another hash does not count.
 *
 * A record that cannot be parsed (truncated, edited, from another version) is moved aside with a
 * warning naming where it went, never silently replaced; the files it listed are re-hashed where
 * they are (organize/in-place.ts) instead of downloaded again. A record that cannot be read at all
 * (EACCES, EIO) is an error: treating it as empty would lose every entry at the next write.
 */
export class VerifiedRecord {
  private readonly file: string;

  private readonly key: RecordKey;

  /** `keyFile`: the record key, in Phoenix's state folder (`<stateDir>/record.key`). */
  constructor(
    private readonly modelsRoot: string,
    keyFile: string,
    private readonly log?: Logger,
  ) {
    this.file = path.join(modelsRoot, RECORD_FILE);
    this.key = new RecordKey(keyFile);
  }

  /**
   * Entries of a model whose files are all still in place and unchanged; undefined otherwise. With
   * `pinnedSha256`, the model must be the one file of that hash.
   */
  async validEntries(modelId: string, pinnedSha256?: string): Promise<VerifiedEntry[] | undefined> {
    const entries = await this.authentic(Object.values((await this.read()).files).filter((e) => e.modelId === modelId));
    if (entries.length === 0) return undefined;
    if (pinnedSha256 !== undefined && (entries.length !== 1 || entries[0]!.sha256 !== pinnedSha256.toLowerCase())) return undefined;
    for (const entry of entries) if (!(await this.isUnchanged(entry))) return undefined;
    return entries;
  }

  /** The entry for a published path, if that file is unchanged since it was verified (and has the pinned hash, if any). */
  async validEntryAt(absolutePath: string, pinnedSha256?: string): Promise<VerifiedEntry | undefined> {
    const entry = await this.entryAt(absolutePath);
    if (!entry || (pinnedSha256 !== undefined && entry.sha256 !== pinnedSha256.toLowerCase())) return undefined;
    return (await this.isUnchanged(entry)) ? entry : undefined;
  }

  /**
   * The sha256 a file at this path was verified to have, even if it changed since: what a re-hash
   * of that file must find for it to be kept when the source publishes no hash.
   */
  async verifiedSha256At(absolutePath: string): Promise<string | undefined> {
    return (await this.entryAt(absolutePath))?.sha256;
  }

  async add(modelId: string, absolutePath: string, sha256: string): Promise<VerifiedEntry> {
    const s = await stat(absolutePath);
    const fields = { modelId, path: this.relative(absolutePath), bytes: s.size, mtimeMs: s.mtimeMs, sha256 };
    const entry: VerifiedEntry = { ...fields, mac: await this.key.sign(macFields(fields)) };
    await this.update((data) => {
      data.files[entry.path] = entry;
    });
    return entry;
  }

  absolute(entry: VerifiedEntry): string {
    return path.join(this.modelsRoot, entry.path);
  }

  private relative(absolutePath: string): string {
    return path.relative(this.modelsRoot, absolutePath);
  }

  private async entryAt(absolutePath: string): Promise<VerifiedEntry | undefined> {
    const key = this.relative(absolutePath);
    const entry = (await this.read()).files[key];
    if (!entry || entry.path !== key) return undefined;
    return (await this.authentic([entry]))[0];
  }

  /** The entries that carry the pod's MAC and name a file inside the models folder; the others are reported and ignored. */
  private async authentic(entries: readonly VerifiedEntry[]): Promise<VerifiedEntry[]> {
    const out: VerifiedEntry[] = [];
    for (const entry of entries) {
      const inside = this.absolute(entry).startsWith(path.resolve(this.modelsRoot) + path.sep) && !path.isAbsolute(entry.path);
      const signed = inside && safeEqual(entry.mac, await this.key.sign(macFields(entry)));
      if (signed) out.push(entry);
      else this.log?.warn({ record: this.file, entry: entry.path }, 'ignoring a verified-files entry this pod did not write (edited, copied, or outside the models folder); its file is re-hashed');
    }
    return out;
  }

  private async isUnchanged(entry: VerifiedEntry): Promise<boolean> {
    try {
      const s = await stat(this.absolute(entry));
      return s.size === entry.bytes && s.mtimeMs === entry.mtimeMs;
    } catch {
      return false;
    }
  }

  private async read(): Promise<RecordFile> {
    const data = await this.load();
    // Moving a damaged record aside is a write: under the write lock, so two readers never race.
    return data ?? withFileLock(this.file, () => this.setAside());
  }

  /** The record as on disk: empty when there is none, undefined when it is damaged. */
  private async load(): Promise<RecordFile | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if (isMissing(err)) return emptyRecord();
      throw new Error(`cannot read the verified-files record ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    return parseRecord(text);
  }

  /** Under the write lock: renames a damaged record out of the way (if still there) and starts an empty one. */
  private async setAside(): Promise<RecordFile> {
    const data = await this.load();
    if (data) return data;
    const aside = `${this.file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(this.file, aside);
    this.log?.warn(
      { record: this.file, keptAs: aside },
      'the verified-files record was damaged or from an older version and is kept aside; files already in place are re-hashed instead of downloaded',
    );
    return emptyRecord();
  }

  /**
   * Read, change, write, under the record's lock: writers in this process and in other pods on a
   * shared volume take turns, so none loses another's entry.
   */
  private async update(change: (data: RecordFile) => void): Promise<void> {
    await mkdir(this.modelsRoot, { recursive: true });
    await withFileLock(this.file, async () => {
      const data = (await this.load()) ?? (await this.setAside());
      change(data);
      await writeFileAtomically(this.file, JSON.stringify(data, null, 1), { mode: 0o600 });
    });
  }
}

function emptyRecord(): RecordFile {
  return { version: 2, files: {} };
}

/** What an entry's MAC covers, in a fixed order. */
function macFields(e: Omit<VerifiedEntry, 'mac'>): (string | number)[] {
  return [e.modelId, e.path, e.bytes, e.mtimeMs, e.sha256];
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The record if the text is one this version wrote, else undefined. */
function parseRecord(text: string): RecordFile | undefined {
  try {
    const parsed = RecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
