import { MODEL_FOLDERS } from '../config/folders.js';
import { statIfExists } from '../lib/fs.js';
import { sha256File } from '../lib/hash.js';
import { publishedPath } from './paths.js';
import type { VerifiedRecord } from './record.js';

export interface InPlaceQuery {
  modelsRoot: string;
  record: VerifiedRecord;
  modelId: string;
  /** The name the file is published under. */
  name: string;
  /** The folder it goes to when known (manifest or source); else every model folder is looked in. */
  category: string | undefined;
  /** What the source published: at least one must be known, or nothing can be checked. */
  bytes: number | undefined;
  sha256: string | undefined;
}

export interface InPlaceFile {
  path: string;
  bytes: number;
  sha256: string;
}

/**
 * A file already in its folder with the content the source published: found through the record
 * when it has an unchanged, authentic entry, else by hashing the file. A file found by hashing is
 * recorded, so a lost, damaged or forged record costs a re-hash of what is in place, never a
 * download. When the source publishes no hash, a re-hashed file must still have the hash its
 * earlier verification recorded. Undefined when it is not there, or not with that content: the
 * caller downloads it again.
 */
export async function findInPlace(query: InPlaceQuery): Promise<InPlaceFile | undefined> {
  const { modelsRoot, record, name, bytes } = query;
  if (bytes === undefined && query.sha256 === undefined) return undefined;
  const folders = query.category !== undefined ? [query.category] : MODEL_FOLDERS;
  for (const folder of folders) {
    const candidate = publishedPath(modelsRoot, folder, name);
    const known = await record.validEntryAt(candidate, query.sha256);
    if (known && matches(known.bytes, known.sha256, query)) return { path: candidate, bytes: known.bytes, sha256: known.sha256 };
    const onDisk = await statIfExists(candidate);
    if (!onDisk?.isFile() || (bytes !== undefined && onDisk.size !== bytes)) continue;
    const sha256 = query.sha256 ?? (await record.verifiedSha256At(candidate));
    const actual = await sha256File(candidate);
    if (!matches(onDisk.size, actual, { bytes, sha256 })) continue;
    await record.add(query.modelId, candidate, actual);
    return { path: candidate, bytes: onDisk.size, sha256: actual };
  }
  return undefined;
}

function matches(size: number, sha256: string, query: Pick<InPlaceQuery, 'bytes' | 'sha256'>): boolean {
  return (query.bytes === undefined || size === query.bytes) && (query.sha256 === undefined || sha256 === query.sha256.toLowerCase());
}
