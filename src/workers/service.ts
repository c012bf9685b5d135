import { execa } from 'execa';
import type { JobName } from '../jobs.js';
import type { Gpu } from '../pod-state.js';
import { jobLogger, type Handler } from './context.js';

export interface ServiceResult {
  pid: number | undefined;
  port: number;
  flags: string[];
  /** Dependencies that failed for good; ComfyUI starts anyway and they are reported failed. */
  failedDependencies: string[];
}

/**
 * service: runs once every dependency has finished (or failed for good), starts ComfyUI and
 * completes when `/system_stats` answers. The ComfyUI child stays supervised by this process.
 */
export const startComfyUI: Handler<typeof JobName.StartComfyUI> = async (job, deps): Promise<ServiceResult> => {
  const log = jobLogger(deps, job);
  const failed = await job.getIgnoredChildrenFailures();
  const failedDependencies = Object.entries(failed).map(([key, reason]) => `${key.split(':').slice(-2).join(':')}: ${reason}`);
  if (failedDependencies.length > 0) log.warn({ failedDependencies }, 'starting ComfyUI without the dependencies that failed');

  const gpus = await detectGpus();
  await deps.pod.setGpus(gpus);
  const flags = [...(gpus.length === 0 ? ['--cpu'] : []), ...deps.config.comfyui.args];
  await job.log(`starting ComfyUI with ${flags.join(' ') || 'no extra flags'}`);
  await deps.comfy.start(flags);
  log.info({ port: deps.config.comfyui.port, pid: deps.comfy.pid }, 'ComfyUI is up');
  return { pid: deps.comfy.pid, port: deps.config.comfyui.port, flags, failedDependencies };
};

async function detectGpus(): Promise<Gpu[]> {
  const r = await execa('nvidia-smi', ['--query-gpu=name,memory.total,compute_cap', '--format=csv,noheader,nounits'], {
    reject: false,
  });
  if (r.exitCode !== 0) return [];
  return r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [name = '', memory = '0', cc = ''] = line.split(',').map((s) => s.trim());
      return { name, memoryMiB: Number(memory), computeCapability: cc };
    });
}
