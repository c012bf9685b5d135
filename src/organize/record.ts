import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomically } from '../lib/fs.js';
import { KeyedMutex } from '../lib/serial.js';

/** One verified file: what it was checked to be, and how to tell it has not changed since. */
export interface VerifiedEntry {
  modelId: string;
  /** Path relative to the models root. */
  path: string;
  bytes: number;
  mtimeMs: number;
  sha256: string;
}

interface RecordFile {
  version: 1;
  files: Record<string, VerifiedEntry>;
}

/** Writes per record file, one at a time across every instance in this process, so none loses another's entry. */
const recordWrites = new KeyedMutex();

/**
 * The record of verified files, kept beside the models (so it travels with a persistent volume).
 * A warm restart trusts an entry whose file still has the same size and mtime, without re-hashing;
 * a file that vanished or changed is provisioned again. Writes are serialised and atomic.
 */
export class VerifiedRecord {
  private readonly file: string;

  constructor(private readonly modelsRoot: string) {
    this.file = path.join(modelsRoot, '.phoenix-verified.json');
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
    try {
      const data = JSON.parse(await readFile(this.file, 'utf8')) as RecordFile;
      return data.version === 1 && data.files ? data : { version: 1, files: {} };
    } catch {
      return { version: 1, files: {} };
    }
  }

  private update(change: (data: RecordFile) => void): Promise<void> {
    return recordWrites.run(this.file, async () => {
      const data = await this.read();
      change(data);
      await mkdir(this.modelsRoot, { recursive: true });
      await writeFileAtomically(this.file, JSON.stringify(data, null, 1));
    });
  }
}
