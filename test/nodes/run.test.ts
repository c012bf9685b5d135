import { describe, expect, it } from 'vitest';
import { TransientError, UserError } from '../../src/lib/errors.js';
import { runStep } from '../../src/nodes/run.js';

const ENV = { PATH: process.env.PATH ?? '' };

describe('runStep', () => {
  it('streams every line and ends a failure\'s message with the last lines of output', async () => {
    const lines: string[] = [];
    const script = 'for i in $(seq 1 40); do echo "line $i"; done; echo "the real problem" >&2; exit 3';
    const err = await runStep('sh', ['-c', script], { cwd: '/', env: ENV, label: 'custom node x: setup', onOutput: (l) => lines.push(l) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    const message = (err as Error).message;
    expect(message).toMatch(/^custom node x: setup failed \(exit 3\):\n/);
    expect(message).toContain('the real problem');
    expect(message).not.toContain('line 20\n');
    expect(lines).toHaveLength(42); // the command itself, 40 lines, the error
  });

  it('says when the program cannot start', async () => {
    await expect(runStep('/no/such/python', ['-V'], { cwd: '/', env: ENV, label: 'probe' })).rejects.toThrow(/probe could not start \/no\/such\/python/);
  });

  it('lets a cancelled step be retried rather than failing the job for good', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await runStep('sleep', ['10'], { cwd: '/', env: ENV, label: 'slow', signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
  });

  it('hides credentials in a URL it echoes', async () => {
    const lines: string[] = [];
    await runStep('true', ['https://user:tok@github.com/o/r?token=t0k3n', '--force'], { cwd: '/', env: ENV, label: 'echo', onOutput: (l) => lines.push(l) });
    expect(lines[0]).toBe('$ true https://***@github.com/o/r?token=*** --force');
  });
});
