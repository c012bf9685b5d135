import type { Logger } from '../lib/log.js';

/** How long an orderly stop may take before the process exits anyway. */
export const SHUTDOWN_DEADLINE_MS = 20_000;

/**
 * What each step of a stop may take, so a whole pod (PARANOID_MODE's cleanup included) stops
 * within Docker's default 10-second grace: jobs still running are dropped after JOBS_MS (a
 * download resumes, a node install runs again at the next start), and ComfyUI is killed
 * COMFYUI_MS after SIGTERM.
 */
export const STOP_GRACE = { jobsMs: 3000, comfyuiMs: 2000 } as const;

/** Runs `stop` on the first SIGTERM/SIGINT; a second signal or the deadline exits at once. */
export function stopOnSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutdown deadline passed; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
