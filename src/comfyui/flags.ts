import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Gpu } from './gpu.js';

/** What any ComfyUI accepts; assumed when its comfy/cli_args.py cannot be read. */
export const BASIC_FLAGS: ReadonlySet<string> = new Set(['--listen', '--port', '--cpu']);

/** Attention backends, best first: the flag and the package that must import for it to work. */
const ATTENTION: readonly { flag: string; module: string | undefined }[] = [
  { flag: '--use-sage-attention', module: 'sageattention' },
  { flag: '--use-flash-attention', module: 'flash_attn' },
  { flag: '--use-pytorch-cross-attention', module: undefined },
];

/** ComfyUI declares each of these groups mutually exclusive: a second one makes it exit 2. */
const ATTENTION_GROUP = new Set([
  '--use-split-cross-attention',
  '--use-quad-cross-attention',
  '--use-pytorch-cross-attention',
  '--use-sage-attention',
  '--use-flash-attention',
]);
const UNET_PRECISION_GROUP = new Set([
  '--fp32-unet',
  '--fp64-unet',
  '--bf16-unet',
  '--fp16-unet',
  '--fp8_e4m3fn-unet',
  '--fp8_e5m2-unet',
  '--fp8_e8m0fnu-unet',
]);

/** --cpu belongs to ComfyUI's VRAM-mode group. */
const VRAM_GROUP = new Set(['--gpu-only', '--highvram', '--normalvram', '--lowvram', '--novram', '--cpu']);

/** bf16 runs natively from Ampere (compute capability 8.0) on. */
const BF16_MIN_COMPUTE_CAPABILITY = 8.0;
const PROBE_TIMEOUT_MS = 120_000;

export interface ComfyFlagsInput {
  gpus: readonly Gpu[];
  /** ComfyUI's Python, in which the attention packages are probed. */
  python: string;
  /** ComfyUI's environment, secrets removed (config.comfyui.env), for those probes. */
  env: Readonly<Record<string, string>>;
  /** COMFY_ARGS: appended last, and never contradicted by a flag chosen here. */
  comfyArgs: readonly string[];
  /** Flags the installed ComfyUI accepts (supportedComfyFlags); all are assumed when absent. */
  supportedFlags?: ReadonlySet<string>;
  /** Privacy: keep ComfyUI's paid API nodes (outside AI services) from loading, where it can. */
  disableApiNodes?: boolean;
}

/**
 * The flags ComfyUI gets beyond --listen/--port: --disable-api-nodes when privacy asks for it;
 * --cpu without a GPU; with one, --bf16-unet where
 * every GPU is Ampere or newer and the best attention backend ComfyUI's Python can import; then
 * COMFY_ARGS. A flag the installed ComfyUI does not know is left out (it would exit 2), and so is
 * one that would clash with a choice the user made in COMFY_ARGS.
 */
export async function chooseComfyFlags(input: ComfyFlagsInput): Promise<string[]> {
  const userFlags = new Set(input.comfyArgs.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!));
  const accepted = (flag: string) => !input.supportedFlags || input.supportedFlags.has(flag);
  const userChose = (group: ReadonlySet<string>) => [...userFlags].some((f) => group.has(f));
  const flags: string[] = [];
  if (input.disableApiNodes && accepted('--disable-api-nodes') && !userFlags.has('--disable-api-nodes')) flags.push('--disable-api-nodes');

  if (input.gpus.length === 0 && !(await torchSeesAccelerator(input.python, input.env))) {
    if (!userChose(VRAM_GROUP)) flags.push('--cpu');
    return [...flags, ...input.comfyArgs];
  }
  const capabilities = input.gpus.map((g) => g.computeCapability);
  if (
    capabilities.length > 0 &&
    capabilities.every((cc) => cc !== undefined && cc >= BF16_MIN_COMPUTE_CAPABILITY) &&
    accepted('--bf16-unet') &&
    !userChose(UNET_PRECISION_GROUP)
  ) {
    flags.push('--bf16-unet');
  }
  if (!userChose(ATTENTION_GROUP)) {
    for (const { flag, module } of ATTENTION) {
      if (!accepted(flag)) continue;
      if (module && !(await imports(input.python, input.env, module))) continue;
      flags.push(flag);
      break;
    }
  }
  return [...flags, ...input.comfyArgs];
}

/**
 * The long options ComfyUI's argument parser declares, read from comfy/cli_args.py
 * (`add_argument("--flag", …)`). Without that file, only BASIC_FLAGS.
 */
export async function supportedComfyFlags(comfyuiDir: string): Promise<ReadonlySet<string>> {
  let source: string;
  try {
    source = await readFile(path.join(comfyuiDir, 'comfy', 'cli_args.py'), 'utf8');
  } catch {
    return BASIC_FLAGS;
  }
  const flags = new Set<string>();
  // Option strings come before the first keyword argument (or the closing parenthesis).
  for (const call of source.matchAll(/add_argument\(([^=)]*)/g)) {
    for (const literal of call[1]!.matchAll(/["'](--[\w-]+)["']/g)) flags.add(literal[1]!);
  }
  return flags.size > 0 ? flags : BASIC_FLAGS;
}

function imports(python: string, env: Readonly<Record<string, string>>, module: string): Promise<boolean> {
  return pythonSucceeds(python, env, `import ${module}`);
}

/**
 * A GPU nvidia-smi cannot show (ROCm, or a container without the tool) still runs torch: asking
 * torch avoids pinning such a machine to --cpu.
 */
function torchSeesAccelerator(python: string, env: Readonly<Record<string, string>>): Promise<boolean> {
  return pythonSucceeds(python, env, 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)');
}

/** Whether `python -c code` exits 0 in ComfyUI's environment. */
async function pythonSucceeds(python: string, env: Readonly<Record<string, string>>, code: string): Promise<boolean> {
  const r = await execa(python, ['-c', code], {
    reject: false,
    stdin: 'ignore',
    env: { ...env },
    extendEnv: false,
    timeout: PROBE_TIMEOUT_MS,
  });
  return r.exitCode === 0;
}
