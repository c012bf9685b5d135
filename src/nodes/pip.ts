import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { TransientError, UserError } from '../lib/errors.js';
import type { RunAs } from '../lib/run-as.js';
import { Mutex } from '../lib/serial.js';
import { runStep } from './run.js';

/**
 * Packages a custom node must never replace in ComfyUI's Python: the torch stack built for this
 * image's CUDA, the attention kernels compiled against it, and the array/image libraries whose
 * major versions ComfyUI's own code depends on. `nvidia-*` covers the CUDA runtime wheels.
 */
export const PINNED_PACKAGES: readonly string[] = [
  'torch',
  'torchvision',
  'torchaudio',
  'xformers',
  'triton',
  'sageattention',
  'flash-attn',
  'numpy',
  'pillow',
];
const PINNED_PREFIXES: readonly string[] = ['nvidia-'];

/**
 * pip installs (and install.py, which usually calls pip) run one at a time in this process: two
 * concurrent pip runs on one environment can corrupt it, and each must see the other's result.
 */
const pipMutex = new Mutex();

export interface PipContext {
  python: string;
  /** ComfyUI's environment, secrets removed (config.comfyui.env). */
  env: Readonly<Record<string, string>>;
  /** The user pip and install.py run as (COMFYUI_USER); Phoenix's own when absent. */
  runAs?: RunAs | undefined;
  /** Where the constraints file is written (a fresh folder inside it); defaults to the OS temp dir. */
  constraintsDir?: string | undefined;
  onOutput?: ((line: string) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `work` holding the pip lock, with a constraints file that pins the PINNED_PACKAGES at the
 * versions ComfyUI's Python has now. `work` gets the file's path and the environment that makes
 * any pip run honour it (PIP_CONSTRAINT, for the pip calls inside install.py).
 */
export function withPinnedPython<T>(ctx: PipContext, work: (constraints: string, env: Record<string, string>) => Promise<T>): Promise<T> {
  return pipMutex.run(async () => {
    const dir = await mkdtemp(path.join(ctx.constraintsDir ?? tmpdir(), 'phoenix-pip-'));
    try {
      const constraints = path.join(dir, 'constraints.txt');
      const pins = await pinnedVersions(ctx);
      // Read by pip as COMFYUI_USER; it holds package versions, nothing secret.
      await chmod(dir, 0o755);
      await writeFile(constraints, pins.map((p) => `${p}\n`).join(''));
      // chmod, not writeFile's mode: that one is cut by the umask (077 in the image).
      await chmod(constraints, 0o644);
      ctx.onOutput?.(`constraints: ${pins.length > 0 ? pins.join(' ') : '(none of the pinned packages is installed)'}`);
      return await work(constraints, {
        ...ctx.env,
        PIP_CONSTRAINT: constraints,
        PIP_DISABLE_PIP_VERSION_CHECK: '1',
        PIP_NO_INPUT: '1',
        PYTHONUNBUFFERED: '1',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

export interface InstallPythonPackagesOptions extends PipContext {
  /** pip requirement specifiers, e.g. "onnxruntime-gpu==1.20.1", "opencv-python-headless". */
  packages: readonly string[];
}

/** Installs EXTRA_PYTHON_PACKAGES into ComfyUI's Python, under the same lock and constraints as nodes. */
export async function installPythonPackages(options: InstallPythonPackagesOptions): Promise<void> {
  if (options.packages.length === 0) return;
  await withPinnedPython(options, (constraints, env) =>
    runStep(options.python, ['-m', 'pip', 'install', '--no-input', '-c', constraints, ...options.packages], {
      cwd: options.constraintsDir ?? tmpdir(),
      label: `pip install ${options.packages.join(' ')}`,
      onOutput: options.onOutput,
      runAs: options.runAs,
      signal: options.signal,
      env,
    }),
  );
}

/**
 * `name==version` for each pinned package installed in `python`. Uses `pip list --format=freeze`
 * rather than `pip freeze`: it prints a version even for packages installed from a URL or
 * editable, whose freeze lines (`torch @ file://…`) pip refuses in a constraints file.
 */
async function pinnedVersions({ python, env, signal, runAs }: PipContext): Promise<string[]> {
  const args = ['-m', 'pip', 'list', '--format=freeze', '--disable-pip-version-check'];
  const command = runAs ? await runAs.command(python, args, env) : { file: python, args };
  const result = await execa(command.file, command.args, {
    reject: false,
    stdin: 'ignore',
    env: runAs?.env(env) ?? { ...env },
    extendEnv: false,
    ...(signal ? { cancelSignal: signal } : {}),
  });
  if (result.isCanceled) throw new TransientError('listing the packages of ComfyUI\'s Python was cancelled');
  if (result.failed) {
    const detail = String(result.stderr || result.shortMessage).trim().split('\n').slice(-5).join('\n');
    throw new UserError(`cannot list the packages of ComfyUI's Python (${python} -m pip list): ${detail}; check COMFYUI_PYTHON`);
  }
  return String(result.stdout)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => {
      const name = line.split('==')[0];
      return line.includes('==') && name !== undefined && isPinned(name);
    });
}

/** PEP 503 normalisation: case and runs of `-_.` do not matter in package names. */
function isPinned(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_.]+/g, '-');
  return PINNED_PACKAGES.includes(n) || PINNED_PREFIXES.some((p) => n.startsWith(p));
}
