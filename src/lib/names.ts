import { createHash } from 'node:crypto';

/** Most file systems (ext4, xfs, overlayfs) hold at most 255 bytes in one name. */
export const MAX_NAME_BYTES = 255;

/**
 * Bidirectional controls, by code point. They reorder how a name is displayed, so
 * "x\u202Eorsnetefas.exe" reads as something else than what it is (CVE-2021-42574).
 */
const BIDI_CONTROLS: Record<number, string> = {
  0x061c: 'ARABIC LETTER MARK',
  0x200e: 'LEFT-TO-RIGHT MARK',
  0x200f: 'RIGHT-TO-LEFT MARK',
  0x202a: 'LEFT-TO-RIGHT EMBEDDING',
  0x202b: 'RIGHT-TO-LEFT EMBEDDING',
  0x202c: 'POP DIRECTIONAL FORMATTING',
  0x202d: 'LEFT-TO-RIGHT OVERRIDE',
  0x202e: 'RIGHT-TO-LEFT OVERRIDE',
  0x2066: 'LEFT-TO-RIGHT ISOLATE',
  0x2067: 'RIGHT-TO-LEFT ISOLATE',
  0x2068: 'FIRST STRONG ISOLATE',
  0x2069: 'POP DIRECTIONAL ISOLATE',
};
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** C0 and C1 control characters and DEL. */
const CONTROL = /[\0-\x1f\x7f-\x9f]/g;
/** A surrogate that is not half of a pair: it has no UTF-8 form. */
const LONE_SURROGATE = /\p{Cs}/gu;

/**
 * Why `name` cannot be a file or folder name, or undefined when it can: it must not escape its
 * directory (no separators, no `..`), be hidden (leading dot: ComfyUI does not list it), exceed
 * what a file system holds, or display as something other than what it is.
 */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  const surrogate = firstMatch(LONE_SURROGATE, name);
  if (surrogate) return `is not valid Unicode: a lone surrogate (U+${hex(surrogate.text)}) at character ${surrogate.index + 1} has no UTF-8 form`;
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) {
    return `is too long: ${[...name].length} characters, ${bytes} bytes in UTF-8; a file or folder name may have at most ${MAX_NAME_BYTES} bytes`;
  }
  if (/[/\\]/.test(name)) return 'must be a plain file name, without "/" or "\\"';
  const control = firstMatch(CONTROL, name);
  if (control) return `must not contain control characters (U+${hex(control.text)} at character ${control.index + 1})`;
  const bidi = firstMatch(BIDI, name);
  if (bidi) {
    return (
      `must not contain bidirectional control characters (U+${hex(bidi.text)} ${BIDI_CONTROLS[bidi.text.codePointAt(0)!]} ` +
      `at character ${bidi.index + 1}): they make a name display as something other than what it is`
    );
  }
  if (name.startsWith('.')) return 'must not start with "." (no "..", no hidden files: ComfyUI does not list them)';
  if (name.trim() !== name) return 'must not start or end with white space';
  return undefined;
}

/** A file or folder name that cannot escape its directory nor disguise itself (see nameProblem). */
export function isPlainName(name: string): boolean {
  return nameProblem(name) === undefined;
}

/** Turns an untrusted file name (from a URL or Content-Disposition) into a plain name, or undefined. */
export function sanitizeFilename(raw: string): string | undefined {
  const base = raw.split(/[/\\]/).pop() ?? '';
  const cleaned = base
    .replace(CONTROL, '')
    .replace(BIDI, '')
    .replace(LONE_SURROGATE, '')
    .replace(/[<>:"|?*]/g, '_')
    .trim()
    .replace(/^\.+/, '');
  const capped = keepEnd(cleaned, 200);
  return isPlainName(capped) ? capped : undefined;
}

/** The end of `text` (where the extension is) within `maxBytes` of UTF-8, never cutting a character. */
function keepEnd(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const chars = [...text];
  let bytes = 0;
  let start = chars.length;
  while (start > 0 && bytes + Buffer.byteLength(chars[start - 1]!, 'utf8') <= maxBytes) {
    start -= 1;
    bytes += Buffer.byteLength(chars[start]!, 'utf8');
  }
  return chars.slice(start).join('').trim();
}

function firstMatch(pattern: RegExp, text: string): { text: string; index: number } | undefined {
  pattern.lastIndex = 0;
  const m = pattern.exec(text);
  pattern.lastIndex = 0;
  return m ? { text: m[0], index: [...text.slice(0, m.index)].length } : undefined;
}

function hex(char: string): string {
  return char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
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
