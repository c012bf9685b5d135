import { open } from 'node:fs/promises';

/** ComfyUI refuses headers over 100 MB; so do we, before allocating anything. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsHeader {
  /** Tensor names, in header order, without `__metadata__`. */
  tensors: string[];
  metadata: Record<string, string>;
}

/** Why a file could not be read as safetensors; the caller words the message for the user. */
export class NotSafetensorsError extends Error {
  override readonly name = 'NotSafetensorsError';
}

/**
 * Reads only the header of a safetensors file: an 8-byte little-endian length N, then N bytes of
 * JSON. Reads through a file handle, so a multi-gigabyte model costs two small reads.
 */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size < 8) throw new NotSafetensorsError(`${size} bytes is too short for a safetensors header`);
    const prefix = Buffer.alloc(8);
    await readExactly(handle, prefix, 0);
    const length = prefix.readBigUInt64LE(0);
    if (length < 2n || length > BigInt(MAX_HEADER_BYTES) || length > BigInt(size - 8)) {
      throw new NotSafetensorsError(`header length ${length} is not plausible for a ${size}-byte file`);
    }
    const json = Buffer.alloc(Number(length));
    await readExactly(handle, json, 8);
    return parseHeader(json.toString('utf8'));
  } finally {
    await handle.close();
  }
}

async function readExactly(handle: Awaited<ReturnType<typeof open>>, buffer: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done);
    if (bytesRead === 0) throw new NotSafetensorsError('file ends inside its header');
    done += bytesRead;
  }
}

function parseHeader(text: string): SafetensorsHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new NotSafetensorsError('header is not JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new NotSafetensorsError('header is not a JSON object');
  }
  const metadata: Record<string, string> = {};
  const tensors: string[] = [];
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (value && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) if (typeof v === 'string') metadata[k] = v;
      }
      continue;
    }
    if (!value || typeof value !== 'object' || !('data_offsets' in value)) {
      throw new NotSafetensorsError(`entry "${key}" is not a tensor description`);
    }
    tensors.push(key);
  }
  return { tensors, metadata };
}
