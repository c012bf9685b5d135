import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import { UserError } from '../lib/errors.js';

export interface ZipLimits {
  maxEntries: number;
  /** Uncompressed bytes of all entries together (a zip bomb stops here, before a byte is written). */
  maxBytes: number;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Unpacks a zip archive into `dest`, which must be an empty or new folder, and returns the
 * relative paths of the files written. The archive is untrusted: an entry that names an absolute
 * path or climbs out with `..` (yauzl refuses those), a symbolic link, or more entries or bytes
 * than the limits fail the whole extraction; each file's bytes are checked against the CRC-32
 * the archive records (yauzl does not check it).
 */
export async function extractZip(archive: string, dest: string, limits: ZipLimits, what: string): Promise<string[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(archive, { autoClose: true, validateEntrySizes: true });
  } catch (err) {
    throw new UserError(`${what} is not a readable zip archive: ${(err as Error).message}`);
  }
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    throw new UserError(`${what} holds ${zip.entryCount} entries, more than the ${limits.maxEntries} allowed`);
  }
  const root = path.resolve(dest);
  const written: string[] = [];
  let total = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const target = path.resolve(root, entry.fileName);
      if (target !== root && !target.startsWith(root + path.sep)) throw new UserError(`${what} holds an unsafe path: ${entry.fileName}`);
      if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
        throw new UserError(`${what} holds a symbolic link (${entry.fileName}), which is refused`);
      }
      if (entry.fileName.endsWith('/')) {
        await mkdir(target, { recursive: true });
        continue;
      }
      total += entry.uncompressedSize;
      if (total > limits.maxBytes) throw new UserError(`${what} unpacks to more than ${limits.maxBytes} bytes, which is refused`);
      await mkdir(path.dirname(target), { recursive: true });
      await writeEntry(zip, entry, target, what);
      written.push(path.relative(root, target).split(path.sep).join('/'));
    }
  } catch (err) {
    zip.close();
    if (err instanceof UserError) throw err;
    // yauzl's own refusals ("invalid relative path: ../x", "absolute path: /x") and corruption.
    throw new UserError(`${what} was refused: ${(err as Error).message}`);
  }
  return written;
}

async function writeEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, target: string, what: string): Promise<void> {
  let crc = 0;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      crc = crc32(chunk, crc);
      done(null, chunk);
    },
  });
  // `wx`: an archive naming one file twice cannot overwrite what it wrote.
  const file = await open(target, 'wx', 0o644);
  try {
    await pipeline(await zip.openReadStreamPromise(entry), check, file.createWriteStream());
  } finally {
    await file.close().catch(() => undefined);
  }
  if (crc >>> 0 !== entry.crc32 >>> 0) throw new UserError(`${what}: ${entry.fileName} does not match its CRC-32 (corrupt archive)`);
}
