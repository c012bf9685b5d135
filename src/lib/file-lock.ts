import lockfile from 'proper-lockfile';
import { KeyedMutex } from './serial.js';

/** A holder that died is presumed gone once its lock has not been refreshed for this long. */
const STALE_MS = 10_000;

const inProcess = new KeyedMutex();

/**
 * Runs `task` while holding `<file>.lock`: one writer at a time across processes, pods included
 * when the file lies on a network volume they share (the lock is a folder, made atomically on any
 * file system). The holder refreshes the lock while it works; a lock left by a holder that was
 * killed counts as stale after STALE_MS and is taken over. Tasks of one process queue up in
 * memory first, so they do not poll the file system against each other.
 */
export function withFileLock<T>(file: string, task: () => Promise<T>): Promise<T> {
  return inProcess.run(file, async () => {
    let lost: Error | undefined;
    const release = await lockfile.lock(file, {
      realpath: false,
      stale: STALE_MS,
      // Long enough to outwait a stale lock of a killed holder: about 30 s in all.
      retries: { retries: 60, factor: 1.3, minTimeout: 20, maxTimeout: 600 },
      onCompromised: (err) => {
        lost = err;
      },
    });
    try {
      const result = await task();
      if (lost) throw new Error(`lost the lock on ${file} while writing it (another process took it over): ${lost.message}`);
      return result;
    } finally {
      await release().catch(() => undefined);
    }
  });
}
