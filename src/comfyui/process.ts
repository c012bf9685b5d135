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
  /** How long a start may take before it counts as failed. */
  startTimeoutMs?: number;
  /** First restart delay; doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

export type ComfyEvent =
  | { type: 'crashed'; code: number | null; signal: string | null; restarts: number }
  | { type: 'restarted'; reason: string; pid: number | null; restarts: number };

/** Exit code of ComfyUI's argument parser: retrying with the same flags cannot help. */
const EXIT_BAD_ARGUMENTS = 2;

/**
 * Owns the ComfyUI child: starts it, waits for `/system_stats`, restarts it with backoff when it
 * dies, and stops it (SIGTERM, then SIGKILL) on shutdown. Every state change is reported.
 */
export class ComfyProcess {
  private child: ResultPromise | undefined;
  private state: ComfyState = 'waiting';
  private restarts = 0;
  private error: string | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private ready: Promise<void> | undefined;
  private flags: readonly string[] = [];
  private startedAt: number | null = null;
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
   * Starts ComfyUI (once) and resolves when it answers its health check. `flags` come after
   * `--listen [host] --port N`: GPU-derived ones, then COMFY_ARGS.
   */
  start(flags: readonly string[]): Promise<void> {
    if (!this.ready) this.flags = flags;
    this.stopping = false;
    this.ready ??= this.launch().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    if (this.child) await stopChild(this.child, timeoutMs);
    await this.pidFile.clear();
    await this.report('stopped');
  }

  /**
   * Restarts a running ComfyUI once, with the same flags: it reads custom_nodes/ only at start,
   * so nodes installed since need a restart. Does nothing unless ComfyUI runs, or when the one
   * running was launched after `since` (it has what arrived by then). Resolves when the new one
   * answers its health check.
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
    this.ready = this.launch().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    await this.ready;
    this.options.onEvent?.({ type: 'restarted', reason, pid: this.pid ?? null, restarts: this.restarts });
    return true;
  }

  private async launch(): Promise<void> {
    await this.report(this.restarts === 0 ? 'starting' : 'restarting');
    const { python, comfyuiDir, host, port, env, log } = this.options;
    const flags = this.flags;
    const main = path.join(comfyuiDir, 'main.py');
    const leftover = await this.pidFile.stopLeftover(main);
    if (leftover) log.warn({ pid: leftover }, 'stopped the ComfyUI an earlier run left behind');
    // Something else answering on the port would pass the health check for a ComfyUI that
    // cannot bind it, so it is refused before starting anything.
    if (await portTaken(port)) {
      this.error =
        `port ${port} (${this.options.portVariable}) is already taken by another process, perhaps another ComfyUI; ` +
        `stop it or choose another ${this.options.portVariable}`;
      await this.report('failed');
      throw new Error(this.error);
    }
    const args = [main, '--listen', ...(host ? [host] : []), '--port', String(port), ...flags];
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
    const comfyLog = log.child({ comfyui: child.pid });
    child.stdout?.on('data', (d: Buffer) => forwardLines(d, (l) => comfyLog.info(l)));
    child.stderr?.on('data', (d: Buffer) => forwardLines(d, (l) => comfyLog.info(l)));

    const exit = child.then((r) => r);
    void exit.then((r) => this.onExit(child, r.exitCode, r.signal));

    const healthy = await Promise.race([
      waitForHealth(port, this.options.startTimeoutMs ?? 600_000, () => child.exitCode !== null),
      exit.then(() => false),
    ]);
    if (!healthy) {
      const result = await Promise.race([exit, Promise.resolve(undefined)]);
      const why = result ? `exited with ${result.exitCode ?? result.signal}` : 'did not answer /system_stats in time';
      if (!result) child.kill('SIGKILL');
      this.error = `ComfyUI ${why}`;
      throw new Error(this.error);
    }
    this.error = null;
    await this.report('running');
  }

  private async onExit(child: ResultPromise, code: number | undefined, signal: string | undefined): Promise<void> {
    if (this.child !== child || this.stopping) return;
    this.error = `ComfyUI exited with ${code ?? signal}`;
    this.options.log.warn({ code, signal }, 'ComfyUI exited');
    if (code === EXIT_BAD_ARGUMENTS) {
      this.error = `ComfyUI refused its arguments (exit 2); check COMFY_ARGS`;
      await this.report('failed');
      return;
    }
    if (this.state !== 'running') return;
    this.options.onEvent?.({ type: 'crashed', code: code ?? null, signal: signal ?? null, restarts: this.restarts });
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const base = this.options.backoffMs ?? 1000;
    const delay = Math.min(this.options.maxBackoffMs ?? 60_000, base * 2 ** Math.min(this.restarts, 16));
    this.restarts += 1;
    void this.report('restarting');
    this.restartTimer = setTimeout(() => {
      this.launch().then(
        () => this.options.onEvent?.({ type: 'restarted', reason: 'it had exited', pid: this.pid ?? null, restarts: this.restarts }),
        (err: Error) => {
          this.options.log.error({ err: err.message }, 'ComfyUI restart failed');
          if (!this.stopping && this.state !== 'failed') this.scheduleRestart();
        },
      );
    }, delay);
  }

  private async report(state: ComfyState): Promise<void> {
    this.state = state;
    await this.options.onStatus({
      state,
      pid: state === 'stopped' || state === 'failed' ? null : this.child?.pid ?? null,
      port: this.options.port,
      restarts: this.restarts,
      error: this.error,
      startedAt: state === 'stopped' || state === 'failed' ? null : this.startedAt,
      updatedAt: Date.now(),
    });
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
