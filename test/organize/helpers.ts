import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DownloadedFile } from '../../src/download/types.js';
import { partPath } from '../../src/download/paths.js';

/** Writes data where the download engine leaves a finished file, and describes it as the engine does. */
export async function downloaded(
  modelsRoot: string,
  modelId: string,
  name: string,
  data: Buffer | string,
  expected: { sha256?: string; bytes?: number } = {},
): Promise<DownloadedFile> {
  const buffer = Buffer.from(data);
  const tempPath = partPath(modelsRoot, modelId, name);
  await mkdir(path.dirname(tempPath), { recursive: true });
  await writeFile(tempPath, buffer);
  const sha256 = sha256Of(buffer);
  return {
    name,
    bytes: buffer.length,
    sha256,
    tempPath,
    expectedBytes: expected.bytes ?? buffer.length,
    expectedSha256: expected.sha256 ?? sha256,
  };
}

export function sha256Of(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Where a test keeps the record key of a models folder: a hidden file inside it (the pod keeps it in its state folder). */
export function keyFile(modelsRoot: string): string {
  return path.join(modelsRoot, '.test-record.key');
}
