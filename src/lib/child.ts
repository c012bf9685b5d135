import type { ResultPromise } from 'execa';

/**
 * Stops a child process: SIGTERM, then SIGKILL if it is still running after `graceMs`. Resolves
 * once it has exited (at once if it already had). The child must be spawned with `reject: false`.
 */
export async function stopChild(child: ResultPromise, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    await child;
  } finally {
    clearTimeout(timer);
  }
}
