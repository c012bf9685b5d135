import { createHash } from 'node:crypto';

/**
 * A file or folder name that cannot escape its directory: no separators, no `..`, no control
 * characters, no leading dot (hidden files are invisible to ComfyUI's listings).
 */
export function isPlainName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    !/[/\\\0-\x1f\x7f]/.test(name) &&
    !name.startsWith('.') &&
    name.trim() === name
  );
}

/** Turns an untrusted file name (from a URL or Content-Disposition) into a plain name, or undefined. */
export function sanitizeFilename(raw: string): string | undefined {
  const base = raw.split(/[/\\]/).pop() ?? '';
  const cleaned = base
    .replace(/[\0-\x1f\x7f]/g, '')
    .replace(/[<>:"|?*]/g, '_')
    .trim()
    .replace(/^\.+/, '');
  const capped = cleaned.length > 200 ? cleaned.slice(cleaned.length - 200) : cleaned;
  return isPlainName(capped) ? capped : undefined;
}

/** Short stable digest used in job ids (BullMQ ids must not contain ':' nor be all digits). */
export function shortHash(value: string, length = 12): string {
  return createHash('sha256').update(value).digest('hex').slice(0, length);
}

/** A job-id-safe slug: lowercase letters, digits and dashes. */
export function slug(value: string, max = 40): string {
  const s = value
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max);
  return s || 'x';
}
