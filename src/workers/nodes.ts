import { describeNode, isRegistryNode } from '../config/nodes.js';
import { installNode } from '../nodes/install.js';
import { installPythonPackages } from '../nodes/pip.js';
import { installRegistryNode } from '../nodes/registry.js';
import type { JobName, NodeResult } from '../queue/jobs.js';
import { jobLogger, type Handler, type WorkerDeps } from './context.js';

/** Lines of git/pip/install.py output kept in a job's log. */
const MAX_LOG_LINES = 400;

/**
 * nodes: a git node is cloned or updated at its ref, a registry node's zip unpacked at its
 * version; then its requirements and install.py. A node that arrives after ComfyUI started asks
 * for the one restart that loads it.
 */
export const installCustomNode: Handler<typeof JobName.InstallNode> = async (job, { node }, deps): Promise<NodeResult> => {
  const log = jobLogger(deps, job).child({ node: node.name });
  const common = {
    comfyuiDir: deps.config.comfyui.dir,
    python: deps.config.comfyui.python,
    env: deps.comfyEnv,
    onOutput: jobLogWriter(job, deps),
  };
  let result: NodeResult;
  if (isRegistryNode(node)) {
    const installed = await installRegistryNode({ ...common, node, registryUrl: deps.config.endpoints.registry });
    result = { name: node.name, path: installed.path, commit: null, version: installed.version, sha256: installed.sha256 };
  } else {
    const installed = await installNode({ ...common, node });
    result = { name: node.name, path: installed.path, commit: installed.commit };
  }
  log.info({ from: describeNode(node), commit: result.commit, version: result.version, path: result.path }, 'custom node installed');
  deps.reloader.nodeInstalled(Date.now());
  return result;
};

/** EXTRA_PYTHON_PACKAGES, installed into ComfyUI's Python (with the same pins) before ComfyUI starts. */
export const installExtraPythonPackages: Handler<typeof JobName.InstallPythonPackages> = async (job, { packages }, deps) => {
  await installPythonPackages({
    packages,
    python: deps.config.comfyui.python,
    env: deps.comfyEnv,
    onOutput: jobLogWriter(job, deps),
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
