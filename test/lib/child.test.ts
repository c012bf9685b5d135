import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { stopChild } from '../../src/lib/child.js';

describe('stopChild', () => {
  it('stops a child with SIGTERM when it obeys', async () => {
    const child = execa('sleep', ['30'], { reject: false });
    await stopChild(child, 10_000);
    expect((await child).signal).toBe('SIGTERM');
  });

  it('kills a child that ignores SIGTERM once the grace period is over', async () => {
    const child = execa('python3', ['-c', 'import signal, time, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint("ready", flush=True)\ntime.sleep(30)'], {
      reject: false,
    });
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const started = Date.now();
    await stopChild(child, 300);
    expect((await child).signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('returns at once for a child that already exited', async () => {
    const child = execa('true', [], { reject: false });
    await child;
    await stopChild(child, 10_000);
    expect((await child).exitCode).toBe(0);
  });
});
