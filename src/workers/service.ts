import { writeExtraModelPaths, extraModelPathsArgs } from '../comfyui/extra-model-paths.js';
import { chooseComfyFlags, supportedComfyFlags } from '../comfyui/flags.js';
import { detectGpus } from '../comfyui/gpu.js';
import { disableApiNodes } from '../privacy/environment.js';
import type { JobName } from '../queue/jobs.js';
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
export const startComfyUI: Handler<typeof JobName.StartComfyUI> = async (job, _data, deps, signal): Promise<ServiceResult> => {
  const log = jobLogger(deps, job);
  const failed = await job.getIgnoredChildrenFailures();
  const failedDependencies = Object.entries(failed).map(([key, reason]) => `${key.split(':').slice(-2).join(':')}: ${reason}`);
  if (failedDependencies.length > 0) log.warn({ failedDependencies }, 'starting ComfyUI without the dependencies that failed');

  const { config } = deps;
  const gpus = await detectGpus({ env: deps.comfyEnv });
  await deps.pod.setGpus(gpus);
  const extraPaths = await writeExtraModelPaths(config);
  const flags = [
    ...extraModelPathsArgs(extraPaths),
    ...(await chooseComfyFlags({
      gpus,
      python: config.comfyui.python,
      env: deps.comfyEnv,
      runAs: deps.runAs,
      comfyArgs: config.comfyui.args,
      supportedFlags: await supportedComfyFlags(config.comfyui.dir),
      disableApiNodes: disableApiNodes(config.privacy),
    })),
  ];
  await job.log(`starting ComfyUI with ${flags.join(' ') || 'no extra flags'}`);
  // ComfyUI is tried until it answers, which may take long; a run cancelled meanwhile (its job
  // lost) ends here while ComfyUI keeps being tried.
  await untilAborted(deps.comfy.start(flags), signal);
  log.info({ port: config.comfyui.port, pid: deps.comfy.pid, gpus: gpus.length }, 'ComfyUI is up');
  return { pid: deps.comfy.pid, port: config.comfyui.port, flags, failedDependencies };
};

function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
