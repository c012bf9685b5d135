import type { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/index.js';
import { stopChild } from '../lib/child.js';
import { UserError } from '../lib/errors.js';
import { pathExists } from '../lib/fs.js';
import { Redactor, type Logger } from '../lib/log.js';

const BINARY = 'filebrowser';
const STOP_GRACE_MS = 8000;

export interface FileBrowserOptions {
  log: Logger;
  /** Where a generated password is printed, once, outside the logger (which redacts it). Default stdout. */
  out?: NodeJS.WritableStream;
  /** Where SIGTERM and SIGINT come from; default the process. */
  signals?: EventEmitter;
}

export interface RunningFileBrowser {
  /** Settles with the exit code once `filebrowser` exits (1 when a signal killed it). */
  exited: Promise<number>;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

/** FileBrowser's database: beside Phoenix's other state, so settings and users survive restarts. */
export function filebrowserDatabase(config: Config): string {
  return path.join(config.stateDir, 'filebrowser.db');
}

/**
 * `phoenix filebrowser`, a supervisord program: configures FileBrowser over $WORKSPACE and runs it
 * until it exits or a signal stops it. Without a `filebrowser` binary it says so and exits 0, which
 * supervisord treats as expected. Returns the exit code.
 */
export async function runFileBrowser(config: Config, options: FileBrowserOptions): Promise<number> {
  const running = await startFileBrowser(config, options);
  if (!running) return 0;
  const signals = options.signals ?? process;
  let stopping = false;
  const onSignal = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    options.log.info({ signal }, 'stopping filebrowser');
    void running.stop();
  };
  signals.on('SIGTERM', onSignal);
  signals.on('SIGINT', onSignal);
  try {
    const code = await running.exited;
    if (stopping) return 0;
    options.log.error({ exitCode: code }, 'filebrowser exited');
    return code === 0 ? 1 : code;
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
  }
}

/** Configures FileBrowser and starts it; undefined when no `filebrowser` is on PATH. */
export async function startFileBrowser(config: Config, options: FileBrowserOptions): Promise<RunningFileBrowser | undefined> {
  const { log } = options;
  const probe = await filebrowser(config, ['version']);
  if (probe.missing) {
    log.info('no filebrowser binary on PATH: FileBrowser is off (the image ships one)');
    return undefined;
  }
  await configure(config, log);

  const { username, password, passwordGenerated, port } = config.filebrowser;
  if (passwordGenerated) {
    (options.out ?? process.stdout).write(`FileBrowser login: ${username} / ${password} (generated for this start; set FB_PASSWORD to choose one)\n`);
  }

  const db = filebrowserDatabase(config);
  const child = execa(BINARY, ['-d', db], {
    env: config.comfyui.env,
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'inherit',
    stderr: 'inherit',
    reject: false,
    cleanup: true,
  });
  log.info({ port, root: config.workspace, db, pid: child.pid }, 'filebrowser started');
  const exited = child.then((r) => (typeof r.exitCode === 'number' ? r.exitCode : 1));
  return {
    exited,
    stop: () => stopChild(child, STOP_GRACE_MS),
  };
}

/**
 * The non-interactive setup: a database on first start, the listen address, port and root every
 * start (FILEBROWSER_PORT or WORKSPACE may have changed), and the login with the password in force.
 */
async function configure(config: Config, log: Logger): Promise<void> {
  const db = filebrowserDatabase(config);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const fresh = !(await pathExists(db));
  if (fresh) await setup(config, ['config', 'init', '-d', db]);
  await setup(config, ['config', 'set', '-d', db, '--address', '0.0.0.0', '--port', String(config.filebrowser.port), '--root', config.workspace]);

  const { username, password } = config.filebrowser;
  // `users update` fails when the user is not there yet (fresh database, or FB_USERNAME changed).
  const updated = !fresh && (await filebrowser(config, ['users', 'update', username, '--password', password, '--perm.admin', '-d', db])).exitCode === 0;
  if (!updated) await setup(config, ['users', 'add', username, password, '--perm.admin', '-d', db]);
  log.info({ db, user: username, port: config.filebrowser.port, root: config.workspace }, 'filebrowser configured');
}

/** Runs one setup command; a failure is a UserError with FileBrowser's own words (never the argv: it holds the password). */
async function setup(config: Config, args: string[]): Promise<void> {
  const r = await filebrowser(config, args);
  if (r.exitCode === 0) return;
  const words = new Redactor(config.secrets).redact(r.output.trim().split('\n').slice(-5).join('\n'));
  throw new UserError(`filebrowser ${args.slice(0, 2).join(' ')} failed (${r.ending}): ${words}`);
}

interface Outcome {
  exitCode: number | undefined;
  /** No `filebrowser` on PATH. */
  missing: boolean;
  /** How it ended, for messages: an exit code, a signal or a spawn error code. */
  ending: string;
  output: string;
}

/** The binary from the pod's PATH, with the pod's environment minus every secret. */
async function filebrowser(config: Config, args: string[]): Promise<Outcome> {
  const r = await execa(BINARY, args, { env: config.comfyui.env, extendEnv: false, stdin: 'ignore', reject: false, timeout: 60_000 });
  const code = 'code' in r && typeof r.code === 'string' ? r.code : undefined;
  return {
    exitCode: r.exitCode,
    missing: code === 'ENOENT',
    ending: String(r.exitCode ?? r.signal ?? code),
    output: String(r.stderr || r.stdout),
  };
}
