import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A child's pid kept in Phoenix's state folder, so a start after a crash (SIGKILL, OOM) can stop
 * the child the dead process left behind — a redis-server on the same socket, a ComfyUI on the
 * same port — before starting its own.
 */
export class PidFile {
  constructor(readonly file: string) {}

  async write(pid: number): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    await writeFile(this.file, `${pid}\n`);
  }

  async clear(): Promise<void> {
    await rm(this.file, { force: true });
  }

  /**
   * Stops the process the file names if it is still running and its command line contains
   * `signature` (a pid may have been reused by an unrelated process). Returns the pid it stopped.
   */
  async stopLeftover(signature: string, timeoutMs = 10_000): Promise<number | undefined> {
    const pid = Number((await readFile(this.file, 'utf8').catch(() => '')).trim());
    await this.clear();
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ');
    if (!cmdline.includes(signature)) return undefined;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + timeoutMs;
    while (isRunning(pid)) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        break;
      }
      await sleep(50);
    }
    return pid;
  }
}

/** Whether a process with this pid exists. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
