import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { stopChild } from '../lib/child.js';
import type { Logger } from '../lib/log.js';
import { PidFile } from '../lib/pidfile.js';
import type { RunAs } from '../lib/run-as.js';
import type { ComfyState, ComfyStatus } from './pod-state.js';

export interface ComfyProcessOptions {
  python: string;
  comfyuiDir: string;
  /** Where ComfyUI listens: an address (127.0.0.1 behind Phoenix's login), or null for every interface. */
  host: string | null;
  port: number;
  /** The variable that sets `port`, named when the port is taken. */
  portVariable: string;
  /** Where ComfyUI's pid is kept, so a start after a crash stops the ComfyUI left behind. */
  pidFile: string;
  /** Already scrubbed of secrets by the configuration. */
  env: Readonly<Record<string, string>>;
  /** The user ComfyUI runs as (COMFYUI_USER); Phoenix's own when absent. */
  runAs?: RunAs;
  log: Logger;
  onStatus: (status: ComfyStatus) => void | Promise<void>;
  /** A crash, and a restart that brought it back (after a crash, or to load new custom nodes). */
  onEvent?: (event: ComfyEvent) => void;
  /** How long a start may take before it counts as failed. Default 10 minutes. */
  startTimeoutMs?: number;
  /** First retry delay; doubles with each failure in a row up to maxBackoffMs. Default 1 s. */
  backoffMs?: number;
  /** Longest retry delay. Default 60 s. */
  maxBackoffMs?: number;
  /** A ComfyUI that answered for this long starts the backoff over when it dies. Default 5 minutes. */
  healthyResetMs?: number;
}

export type ComfyEvent =
  | { type: 'crashed'; code: number | null; signal: string | null; restarts: number }
  | { type: 'restarted'; reason: string; pid: number | null; restarts: number };

/** Exit code of ComfyUI's argument parser: retrying with the same flags cannot help. */
const EXIT_BAD_ARGUMENTS = 2;
/** Output lines of the current attempt kept for /status when it fails. */
const OUTPUT_LINES = 20;

/**
 * Owns the ComfyUI child: starts it, waits for `/system_stats`, and keeps trying for as long as
 * Phoenix runs — a start that fails and a ComfyUI that dies are both tried again after a backoff
 * that doubles up to a cap and starts over once ComfyUI has been healthy for a while. Only flags
 * ComfyUI refuses (exit 2) end the tries: the same flags would be refused again. Between tries
 * the state is `failed` (start failed) or `restarting` (it died), with no pid, the error, the last
 * output lines and when the next try is due. Stops it (SIGTERM, then SIGKILL) on shutdown.
 */
export class ComfyProcess {
  private child: ResultPromise | undefined;
  private state: ComfyState = 'waiting';
  /** Tries after the first, ever: what /status calls restarts. */
  private restarts = 0;
  /** Failures since ComfyUI last stayed healthy for healthyResetMs: the backoff's exponent. */
  private failuresInARow = 0;
  private healthySince: number | undefined;
  private error: string | null = null;
  private output: string[] = [];
  private nextTryAt: number | null = null;
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The try under way, if any: a stop waits for it, so no ComfyUI is started behind its back. */
  private attempting: Promise<void> = Promise.resolve();
  private flags: readonly string[] = [];
  private ready: Promise<void> | undefined;
  private settleReady: { resolve: () => void; reject: (err: Error) => void } | undefined;
  /** When the ComfyUI now starting or running was launched; custom nodes installed later are not in it. */
  private startedAt: number | null = null;
  /** Why the next successful try is a restart worth announcing (it died); undefined otherwise. */
  private restartReason: string | undefined;
  private readonly pidFile: PidFile;

  constructor(private readonly options: ComfyProcessOptions) {
    this.pidFile = new PidFile(options.pidFile);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** When the ComfyUI now starting or running was launched; null before the first start. */
  get launchedAt(): number | null {
    return this.startedAt;
  }

  /**
   * Starts ComfyUI (once) and resolves when it answers its health check, however many tries that
   * takes; rejects only when Phoenix stops or ComfyUI refuses its flags. `flags` come after
   * `--listen [host] --port N`: GPU-derived ones, then COMFY_ARGS. Once stopped it starts no more.
   */
  start(flags: readonly string[]): Promise<void> {
    if (this.stopping) return Promise.reject(new Error('Phoenix is stopping'));
    if (this.ready) return this.ready;
    this.flags = flags;
    return this.tryUntilRunning();
  }

  /**
   * Restarts a running ComfyUI once, with the same flags: it reads custom_nodes/ only at start,
   * so nodes installed since need a restart. Does nothing unless ComfyUI runs, or when the one
   * running was launched after `since` (it has what arrived by then). Resolves when the new one
   * answers its health check (after as many tries as that takes).
   */
  async reload(reason: string, since = 0): Promise<boolean> {
    await this.ready?.catch(() => undefined);
    const child = this.child;
    if (!this.ready || this.stopping || this.state !== 'running' || !child || child.exitCode !== null) return false;
    if (this.startedAt !== null && this.startedAt > since) return false;
    // Forgetting the child first makes its exit a planned one (onExit ignores it).
    this.child = undefined;
    this.options.log.info({ reason }, 'restarting ComfyUI');
    await stopChild(child, 10_000);
    this.restarts += 1;
    await this.tryUntilRunning();
    this.options.onEvent?.({ type: 'restarted', reason, pid: this.pid ?? null, restarts: this.restarts });
    return true;
  }

  /** Starts the tries; the promise settles when one answers, or when tries end for good. */
  private tryUntilRunning(): Promise<void> {
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    this.ready.catch(() => {
      this.ready = undefined;
    });
    this.attempting = this.attempt();
    return this.ready;
  }

  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    this.nextTryAt = null;
    this.settleReady?.reject(new Error('Phoenix is stopping'));
    this.settleReady = undefined;
    if (this.child) await stopChild(this.child, timeoutMs);
    // A try under way sees `stopping`, stops what it started and returns.
    await this.attempting;
    if (this.child) await stopChild(this.child, timeoutMs);
    await this.pidFile.clear();
    await this.report('stopped');
  }

  /** Reports the current state again (after Redis lost what it was told). */
  republish(): Promise<void> {
    return this.report(this.state);
  }

  /** Stops a ComfyUI that a process which died without stopping it left running (its pid file). */
  async stopLeftover(): Promise<number | undefined> {
    const pid = await this.pidFile.stopLeftover(path.join(this.options.comfyuiDir, 'main.py'));
    if (pid) this.options.log.warn({ pid }, 'stopped the ComfyUI an earlier run left behind');
    return pid;
  }

  /** One try: start ComfyUI and wait until it answers, or until it fails. */
  private async attempt(): Promise<void> {
    this.output = [];
    this.nextTryAt = null;
    await this.report(this.restarts === 0 ? 'starting' : 'restarting');
    try {
      await this.launch();
    } catch (err) {
      if (this.stopping) return;
      this.error = (err as Error).message;
      if (err instanceof RefusedFlags) {
        await this.report('failed');
        this.settleReady?.reject(err);
        this.settleReady = undefined;
        return;
      }
      this.options.log.error({ err: this.error, output: this.output }, 'ComfyUI did not start; trying again');
      this.scheduleRetry('failed');
      return;
    }
    this.error = null;
    this.healthySince = Date.now();
    await this.report('running');
    this.settleReady?.resolve();
    this.settleReady = undefined;
    if (this.restartReason !== undefined) {
      this.options.onEvent?.({ type: 'restarted', reason: this.restartReason, pid: this.pid ?? null, restarts: this.restarts });
      this.restartReason = undefined;
    }
  }

  private async launch(): Promise<void> {
    const { python, comfyuiDir, host, port, portVariable, env, log } = this.options;
    await this.stopLeftover();
    // Something else answering on the port would pass the health check for a ComfyUI that
    // cannot bind it, so it is refused before starting anything.
    if (await portTaken(port)) {
      throw new Error(
        `port ${port} (${portVariable}) is already taken by another process, perhaps another ComfyUI; ` +
          `stop it or choose another ${portVariable}`,
      );
    }
    if (this.stopping) throw new Error('Phoenix is stopping');
    const args = [path.join(comfyuiDir, 'main.py'), '--listen', ...(host ? [host] : []), '--port', String(port), ...this.flags];
    log.info({ python, args, user: this.options.runAs?.status.user ?? null }, 'starting ComfyUI');
    this.startedAt = Date.now();
    const command = this.options.runAs ? await this.options.runAs.command(python, args, env) : { file: python, args };
    const child = execa(command.file, command.args, {
      cwd: comfyuiDir,
      env: this.options.runAs?.env(env) ?? { ...env },
      extendEnv: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      reject: false,
      cleanup: true,
    });
    this.child = child;
    if (child.pid) await this.pidFile.write(child.pid);
    await this.report(this.state);
    const comfyLog = log.child({ comfyui: child.pid });
    const onLine = (line: string): void => {
      comfyLog.info(line);
      this.output.push(line);
      if (this.output.length > OUTPUT_LINES) this.output.shift();
    };
    child.stdout?.on('data', (d: Buffer) => forwardLines(d, onLine));
    child.stderr?.on('data', (d: Buffer) => forwardLines(d, onLine));

    const exit = child.then((r) => r);
    void exit.then((r) => this.onExit(child, r.exitCode, r.signal));
    const healthy = await Promise.race([
      waitForHealth(port, this.options.startTimeoutMs ?? 600_000, () => child.exitCode !== null || this.stopping),
      exit.then(() => false),
    ]);
    if (healthy) return;
    const result = await Promise.race([exit, Promise.resolve(undefined)]);
    if (!result) await stopChild(child, 5000);
    if (result?.exitCode === EXIT_BAD_ARGUMENTS) throw new RefusedFlags();
    throw new Error(`ComfyUI ${result ? `exited with ${result.exitCode ?? result.signal} before it answered` : 'did not answer /system_stats in time'}`);
  }

  /** A ComfyUI that was running died: try again (a start that fails is handled by `attempt`). */
  private onExit(child: ResultPromise, code: number | undefined, signal: string | undefined): void {
    if (this.child !== child || this.stopping || this.state !== 'running') return;
    this.error = `ComfyUI exited with ${code ?? signal}`;
    this.options.log.warn({ code, signal, output: this.output }, 'ComfyUI exited; restarting it');
    this.options.onEvent?.({ type: 'crashed', code: code ?? null, signal: signal ?? null, restarts: this.restarts });
    this.restartReason = 'it had exited';
    this.scheduleRestartAfterRun();
  }

  private scheduleRestartAfterRun(): void {
    const healthyFor = this.healthySince !== undefined ? Date.now() - this.healthySince : 0;
    if (healthyFor >= (this.options.healthyResetMs ?? 5 * 60_000)) this.failuresInARow = 0;
    this.scheduleRetry('restarting');
  }

  private scheduleRetry(state: 'failed' | 'restarting'): void {
    const base = this.options.backoffMs ?? 1000;
    const delay = Math.min(this.options.maxBackoffMs ?? 60_000, base * 2 ** Math.min(this.failuresInARow, 16));
    this.failuresInARow += 1;
    this.restarts += 1;
    this.child = undefined;
    this.nextTryAt = Date.now() + delay;
    void this.report(state);
    this.retryTimer = setTimeout(() => {
      this.attempting = this.attempt();
    }, delay);
  }

  private async report(state: ComfyState): Promise<void> {
    this.state = state;
    const live = state === 'starting' || state === 'restarting' || state === 'running';
    await this.options.onStatus({
      state,
      pid: live ? this.child?.pid ?? null : null,
      port: this.options.port,
      restarts: this.restarts,
      error: this.error,
      lastOutput: state === 'failed' || state === 'restarting' ? [...this.output] : [],
      nextTryAt: this.nextTryAt,
      startedAt: live ? this.startedAt : null,
      updatedAt: Date.now(),
    });
  }
}

/** ComfyUI exited with code 2: its argument parser refused a flag. */
class RefusedFlags extends Error {
  constructor() {
    super('ComfyUI refused its arguments (exit 2); check COMFY_ARGS');
  }
}

/** Whether binding the port on every interface, as `--listen` does, fails with EADDRINUSE. */
export function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(true);
      else reject(err);
    });
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/** GET /system_stats until it answers 200, or until `gaveUp()` (the child exited). */
export async function waitForHealth(port: number, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gaveUp()) {
    if (await isHealthy(port)) return true;
    await sleep(250);
  }
  return false;
}

export async function isHealthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/system_stats`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

function forwardLines(chunk: Buffer, write: (line: string) => void): void {
  for (const line of chunk.toString().split('\n')) if (line.trim()) write(line.trimEnd());
}
