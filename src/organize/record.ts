import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { isMissing, writeFileAtomically } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import { KeyedMutex } from '../lib/serial.js';

/** One verified file: what it was checked to be, and how to tell it has not changed since. */
const VerifiedEntry = z.object({
  modelId: z.string(),
  /** Path relative to the models root. */
  path: z.string(),
  bytes: z.number(),
  mtimeMs: z.number(),
  sha256: z.string(),
});
export type VerifiedEntry = z.output<typeof VerifiedEntry>;

const RecordSchema = z.object({ version: z.literal(1), files: z.record(z.string(), VerifiedEntry) });
type RecordFile = z.output<typeof RecordSchema>;

/** Writes per record file, one at a time across every instance in this process, so none loses another's entry. */
const recordWrites = new KeyedMutex();

/** The record's file name, beside the model folders. */
export const RECORD_FILE = '.phoenix-verified.json';

/**
 * The record of verified files, kept beside the models (so it travels with a persistent volume).
 * A warm restart trusts an entry whose file still has the same size and mtime, without re-hashing;
 * a file that vanished or changed is provisioned again. Writes are serialised and atomic.
 *
 * A record that cannot be parsed (truncated, edited, from another version) is moved aside with a
 * warning naming where it went, never silently replaced; the files it listed are re-hashed where
 * they are (organize/in-place.ts) instead of downloaded again. A record that cannot be read at all
 * (EACCES, EIO) is an error: treating it as empty would lose every entry at the next write.
 */
export class VerifiedRecord {
  private readonly file: string;

  constructor(
    private readonly modelsRoot: string,
    private readonly log?: Logger,
  ) {
    this.file = path.join(modelsRoot, RECORD_FILE);
  }

  /** Entries of a model whose files are all still in place and unchanged; undefined otherwise. */
  async validEntries(modelId: string): Promise<VerifiedEntry[] | undefined> {
    const entries = Object.values((await this.read()).files).filter((e) => e.modelId === modelId);
    if (entries.length === 0) return undefined;
    for (const entry of entries) if (!(await this.isUnchanged(entry))) return undefined;
    return entries;
  }

  /** The entry for a published path, if that file is unchanged since it was verified. */
  async validEntryAt(absolutePath: string): Promise<VerifiedEntry | undefined> {
    const entry = (await this.read()).files[this.relative(absolutePath)];
    return entry && (await this.isUnchanged(entry)) ? entry : undefined;
  }

  async add(modelId: string, absolutePath: string, sha256: string): Promise<VerifiedEntry> {
    const s = await stat(absolutePath);
    const entry: VerifiedEntry = {
      modelId,
      path: this.relative(absolutePath),
      bytes: s.size,
      mtimeMs: s.mtimeMs,
      sha256,
    };
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
    return data ?? recordWrites.run(this.file, () => this.setAside());
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
      'the verified-files record was damaged and is kept aside; files already in place are re-hashed instead of downloaded',
    );
    return emptyRecord();
  }

  private update(change: (data: RecordFile) => void): Promise<void> {
    return recordWrites.run(this.file, async () => {
      const data = (await this.load()) ?? (await this.setAside());
      change(data);
      await mkdir(this.modelsRoot, { recursive: true });
      await writeFileAtomically(this.file, JSON.stringify(data, null, 1));
    });
  }
}

function emptyRecord(): RecordFile {
  return { version: 1, files: {} };
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
