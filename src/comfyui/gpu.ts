import { execa } from 'execa';

export interface Gpu {
  name: string;
  memoryMiB: number;
  /** Position in nvidia-smi's list (PCI bus order). */
  index: number;
  /** CUDA compute capability, e.g. 8.9; undefined when the driver's nvidia-smi cannot report it. */
  computeCapability: number | undefined;
}

export interface DetectGpusOptions {
  /** Environment for nvidia-smi (its PATH decides which nvidia-smi runs); defaults to this process's. */
  env?: Record<string, string | undefined>;
}

const FIELDS_WITH_CC = 'name,memory.total,compute_cap';
const FIELDS = 'name,memory.total';

/**
 * The NVIDIA GPUs nvidia-smi reports. No nvidia-smi on PATH, or one that cannot reach a driver,
 * means no GPUs. Drivers older than 510 lack the compute_cap field: they are asked again without it.
 */
export async function detectGpus(options: DetectGpusOptions = {}): Promise<Gpu[]> {
  const withCc = await query(FIELDS_WITH_CC, options);
  if (withCc !== undefined) return withCc;
  return (await query(FIELDS, options)) ?? [];
}

async function query(fields: string, options: DetectGpusOptions): Promise<Gpu[] | undefined> {
  const result = await execa('nvidia-smi', [`--query-gpu=${fields}`, '--format=csv,noheader,nounits'], {
    reject: false,
    stdin: 'ignore',
    timeout: 30_000,
    ...(options.env ? { env: options.env, extendEnv: false } : {}),
  });
  if (result.failed) return undefined;
  return String(result.stdout)
    .split('\n')
    .map((line) => line.split(',').map((f) => f.trim()))
    .filter((f) => f.length >= 2 && f[0])
    .map(([name, memory, cc], index) => ({
      index,
      name: name!,
      memoryMiB: Number(memory) || 0,
      computeCapability: cc !== undefined && /^\d+(\.\d+)?$/.test(cc) ? Number(cc) : undefined,
    }));
}
