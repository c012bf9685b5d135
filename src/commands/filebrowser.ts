import type { EventEmitter } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/index.js';
import { stopChild } from '../lib/child.js';
import { UserError } from '../lib/errors.js';
import { pathExists } from '../lib/fs.js';
import { Redactor, type Logger } from '../lib/log.js';
import { fileBrowserRoot, fileBrowserRules, fileBrowserUser, managedFolders } from './filebrowser-scope.js';

const BINARY = 'filebrowser';
/** FileBrowser stops at once on SIGTERM; it is killed after this, within Docker's 10-second stop grace. */
const STOP_GRACE_MS = 2000;

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
 * `phoenix filebrowser`, a supervisord program: configures FileBrowser over what users manage and runs it
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
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
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
    cwd: config.stateDir,
    env: config.comfyui.env,
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'inherit',
    stderr: 'inherit',
    reject: false,
    cleanup: true,
  });
  log.info({ port, db, pid: child.pid }, 'filebrowser started');
  const exited = child.then((r) => (typeof r.exitCode === 'number' ? r.exitCode : 1));
  return {
    exited,
    stop: () => stopChild(child, STOP_GRACE_MS),
  };
}

/**
 * The non-interactive setup, every start, whatever the database on the volume holds: a database
 * on first start; then the listen address, port and root, sign-up off, command execution off and
 * login required; then the user base replaced by one user from FB_USERNAME / FB_PASSWORD, whose
 * rules let it reach the models and ComfyUI's input, output and workflows, nothing else. The
 * password never appears on a command line: `users import` reads its bcrypt hash from a file in
 * Phoenix's state folder, removed right after.
 */
async function configure(config: Config, log: Logger): Promise<void> {
  const db = filebrowserDatabase(config);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  if (!(await pathExists(db))) await setup(config, ['config', 'init', '-d', db]);
  const folders = managedFolders(config);
  for (const folder of folders) await mkdir(folder, { recursive: true });
  const root = fileBrowserRoot(folders);
  await setup(config, [
    'config', 'set', '-d', db,
    '--address', '0.0.0.0',
    '--port', String(config.filebrowser.port),
    '--root', root,
    '--signup=false',
    '--createUserDir=false',
    '--disableExec=true',
    '--auth.method', 'json',
  ]);

  const users = path.join(config.stateDir, 'filebrowser-users.json');
  // `users import --replace` saves the imported list as users.backup.json in its working folder.
  const backup = path.join(config.stateDir, 'users.backup.json');
  try {
    await writeFile(users, JSON.stringify([await fileBrowserUser(config, fileBrowserRules(root, folders))]), { mode: 0o600 });
    await setup(config, ['users', 'import', users, '--replace', '-d', db]);
  } finally {
    await rm(users, { force: true });
    await rm(backup, { force: true });
  }
  log.info({ db, user: config.filebrowser.username, port: config.filebrowser.port, root, folders }, 'filebrowser configured');
}

/** Runs one setup command; a failure is a UserError with FileBrowser's own words. */
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
  const r = await execa(BINARY, args, { cwd: config.stateDir, env: config.comfyui.env, extendEnv: false, stdin: 'ignore', reject: false, timeout: 60_000 });
  const code = 'code' in r && typeof r.code === 'string' ? r.code : undefined;
  return {
    exitCode: r.exitCode,
    missing: code === 'ENOENT',
    ending: String(r.exitCode ?? r.signal ?? code),
    output: String(r.stderr || r.stdout),
  };
}
