import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Redactor, createLogger } from '../../src/lib/log.js';

describe('secret redaction', () => {
  it('replaces secrets wherever they appear, URL-encoded too', () => {
    const r = new Redactor(['hf_abc123', 'Bearer with space', 'x']);
    expect(r.redact('GET https://h/x?token=hf_abc123 auth=Bearer with space enc=Bearer%20with%20space')).toBe(
      'GET https://h/x?token=[redacted] auth=[redacted] enc=[redacted]',
    );
    // Secrets shorter than 4 characters would redact ordinary words: they are not used.
    expect(r.redact('x marks')).toBe('x marks');
  });

  it('keeps secrets out of every log line, messages and fields alike', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger({ secrets: ['civitai-secret-1'], debug: true, destination });
    log.child({ job: 'j1' }).info({ url: 'https://c/api?token=civitai-secret-1' }, 'fetching with civitai-secret-1');
    log.error(new Error('failed: civitai-secret-1'));
    expect(lines).toHaveLength(2);
    expect(lines.join('')).not.toContain('civitai-secret-1');
    expect(JSON.parse(lines[0]!)).toMatchObject({ job: 'j1', url: 'https://c/api?token=[redacted]', msg: 'fetching with [redacted]' });
  });
});
