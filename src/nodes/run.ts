import path from 'node:path';
import { execa } from 'execa';
import { TransientError, UserError } from '../lib/errors.js';
import type { RunAs } from '../lib/run-as.js';
import { redactUrl } from '../lib/url-credentials.js';

export interface RunOptions {
  cwd: string;
  /** What the failure message calls this step ("custom node foo: pip install"). */
  label: string;
  /** Receives every line the command prints, stdout and stderr interleaved. */
  onOutput?: ((line: string) => void) | undefined;
  signal?: AbortSignal | undefined;
  /**
   * The command's whole environment: the configuration's secret-free one (config.comfyui.env)
   * plus the step's own variables. Nothing of Phoenix's own environment is inherited: git, pip and
   * a node's install.py run third-party code.
   */
  env: Readonly<Record<string, string>>;
  /** The user the command runs as (COMFYUI_USER); Phoenix's own when absent. */
  runAs?: RunAs | undefined;
}

/** Lines of output kept for the error message of a failing command. */
const TAIL_LINES = 15;

/**
 * Runs one command (argument array, no shell), streaming its output line by line to onOutput.
 * A non-zero exit becomes a UserError carrying the last lines of output: what went wrong is in
 * the node or the requirement, and retrying would fail the same way.
 */
export async function runStep(file: string, args: readonly string[], options: RunOptions): Promise<void> {
  options.onOutput?.(`$ ${[path.basename(file), ...args].map(redactUrl).join(' ')}`);
  const tail: string[] = [];
  const command = options.runAs ? await options.runAs.command(file, args, options.env) : { file, args };
  const child = execa(command.file, command.args, {
    cwd: options.cwd,
    all: true,
    buffer: false,
    reject: false,
    stdin: 'ignore',
    env: options.runAs?.env(options.env) ?? { ...options.env },
    extendEnv: false,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  });
  for await (const line of child.iterable({ from: 'all' })) {
    if (!line.trim()) continue;
    options.onOutput?.(line);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  }
  const result = await child;
  if (!result.failed) return;
  // Stopped on purpose (worker shutdown): not the node's fault, so the job may run again.
  if (result.isCanceled) throw new TransientError(`${options.label} was cancelled`);
  if (result.exitCode === undefined && !result.signal) {
    throw new UserError(`${options.label} could not start ${file}: ${result.originalMessage ?? result.shortMessage}`);
  }
  const why = result.exitCode !== undefined ? `exit ${result.exitCode}` : `killed by ${result.signal}`;
  throw new UserError(`${options.label} failed (${why})${tail.length > 0 ? `:\n${tail.join('\n')}` : ''}`);
}
