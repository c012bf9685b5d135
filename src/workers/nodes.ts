import { installNode } from '../nodes/install.js';
import { installPythonPackages } from '../nodes/pip.js';
import type { JobName, NodeResult } from '../queue/jobs.js';
import { configuredNode } from './configured.js';
import { jobLogger, type Handler, type WorkerDeps } from './context.js';

/** Lines of git/pip/install.py output kept in a job's log. */
const MAX_LOG_LINES = 400;

/** nodes: clones or updates a custom node at its ref, installs its requirements, runs install.py. */
export const installCustomNode: Handler<typeof JobName.InstallNode> = async (job, { node }, deps): Promise<NodeResult> => {
  const log = jobLogger(deps, job).child({ node: node.name });
  const logLine = jobLogWriter(job, deps);
  const installed = await installNode({
    node: configuredNode(deps.config, node),
    comfyuiDir: deps.config.comfyui.dir,
    python: deps.config.comfyui.python,
    env: deps.config.comfyui.env,
    onOutput: logLine,
    runAs: deps.runAs,
  });
  log.info({ commit: installed.commit, path: installed.path }, 'custom node installed');
  return { name: node.name, path: installed.path, commit: installed.commit };
};

/** EXTRA_PYTHON_PACKAGES, installed into ComfyUI's Python (with the same pins) before ComfyUI starts. */
export const installExtraPythonPackages: Handler<typeof JobName.InstallPythonPackages> = async (job, { packages }, deps) => {
  await installPythonPackages({
    packages,
    python: deps.config.comfyui.python,
    env: deps.config.comfyui.env,
    onOutput: jobLogWriter(job, deps),
    runAs: deps.runAs,
  });
  jobLogger(deps, job).info({ packages }, 'python packages installed');
  return { packages };
};

function jobLogWriter(job: { log(line: string): Promise<number> }, deps: WorkerDeps): (line: string) => void {
  let lines = 0;
  return (line) => {
    lines += 1;
    if (lines <= MAX_LOG_LINES) void job.log(deps.redactor.redact(line)).catch(() => undefined);
    else if (lines === MAX_LOG_LINES + 1) void job.log('… further output omitted').catch(() => undefined);
  };
}
