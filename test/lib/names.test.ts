import { describe, expect, it } from 'vitest';
import { isPlainName, nameProblem, sanitizeFilename } from '../../src/lib/names.js';

describe('nameProblem', () => {
  it('accepts plain names in any script', () => {
    for (const name of ['flux1-dev.safetensors', 'モデル.safetensors', 'café ü.ckpt', '😀.pt', 'a'.repeat(255)]) expect(nameProblem(name), name).toBeUndefined();
  });

  it('says which rule a name breaks', () => {
    expect(nameProblem('')).toBe('must not be empty');
    expect(nameProblem('a\ud800b')).toBe('is not valid Unicode: a lone surrogate (U+D800) at character 2 has no UTF-8 form');
    expect(nameProblem('x'.repeat(256))).toBe('is too long: 256 characters, 256 bytes in UTF-8; a file or folder name may have at most 255 bytes');
    // Length is counted in bytes, as file systems count it.
    expect(nameProblem('モ'.repeat(86))).toBe('is too long: 86 characters, 258 bytes in UTF-8; a file or folder name may have at most 255 bytes');
    expect(nameProblem('a/b')).toBe('must be a plain file name, without "/" or "\\"');
    expect(nameProblem('a\\b')).toBe('must be a plain file name, without "/" or "\\"');
    expect(nameProblem('a\tb')).toBe('must not contain control characters (U+0009 at character 2)');
    expect(nameProblem('a\u0085b')).toBe('must not contain control characters (U+0085 at character 2)');
    expect(nameProblem('photo\u202Egnp.exe')).toBe(
      'must not contain bidirectional control characters (U+202E RIGHT-TO-LEFT OVERRIDE at character 6): they make a name display as something other than what it is',
    );
    expect(nameProblem('😀\u2066x')).toMatch(/^must not contain bidirectional control characters \(U\+2066 LEFT-TO-RIGHT ISOLATE at character 2\)/);
    expect(nameProblem('..')).toMatch(/^must not start with "\."/);
    expect(nameProblem('.hidden')).toMatch(/^must not start with "\."/);
    expect(nameProblem(' padded ')).toBe('must not start or end with white space');
    expect(isPlainName('fine.safetensors')).toBe(true);
    expect(isPlainName('../x')).toBe(false);
  });
});

describe('sanitizeFilename', () => {
  it('drops what would disguise or break a name offered by a server', () => {
    expect(sanitizeFilename('dir/evil\u202Egnp.exe')).toBe('evilgnp.exe');
    expect(sanitizeFilename('a\ud800b.safetensors')).toBe('ab.safetensors');
    expect(sanitizeFilename('..\\..\\x:y?.ckpt')).toBe('x_y_.ckpt');
    expect(sanitizeFilename('...')).toBeUndefined();
  });

  it('keeps the end of a long name within the bytes a file system holds, never cutting a character', () => {
    const name = sanitizeFilename(`${'モ'.repeat(100)}.safetensors`)!;
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    expect(name.endsWith('.safetensors')).toBe(true);
    expect(name.startsWith('モ')).toBe(true);
  });
});
