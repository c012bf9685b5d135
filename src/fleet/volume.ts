import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createFileOnce } from '../lib/fs.js';

/**
 * The identity of the disk that holds the models: a random id written once beside them. Pods that
 * mount the same network volume read the same id, so they can tell they would write the same
 * files; pods on their own disks each have their own.
 */
export async function volumeId(modelsRoot: string): Promise<string> {
  const file = path.join(modelsRoot, '.phoenix-volume-id');
  const existing = await readId(file);
  if (existing) return existing;
  await mkdir(modelsRoot, { recursive: true });
  // Of two pods racing to write it, one wins and both read the winner's id; the file appears whole,
  // so no pod reads it half-written.
  await createFileOnce(file, `${randomUUID()}\n`);
  const id = await readId(file);
  if (!id) throw new Error(`${file} holds no volume id`);
  return id;
}

async function readId(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const id = text.trim();
  return /^[0-9a-f-]{36}$/.test(id) ? id : undefined;
}
