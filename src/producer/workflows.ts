import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { RuntimeWorkflow } from '../config/workflow-load.js';
import type { Logger } from '../lib/log.js';
import type { Queues } from '../queue/queues.js';
import { enqueueModels, enqueueNode, type EnqueuedModel } from './produce.js';

export interface EnqueuedWorkflow {
  name: string;
  models: EnqueuedModel[];
  nodes: { name: string; jobId: string; status: 'queued' | 'exists' }[];
  notes: string[];
}

/**
 * A workflow added at runtime: its models (ahead of downloads no workflow needs) and node packs
 * are enqueued, what is already there or on its way is not added twice, and the workflow is
 * recorded so /status follows it. ComfyUI restarts once after new node packs are installed.
 */
export async function enqueueWorkflow(config: Config, queues: Queues, pod: PodState, workflow: RuntimeWorkflow, log?: Logger): Promise<EnqueuedWorkflow> {
  const models = await enqueueModels(config, queues, workflow.models, { priority: 1, ...(log ? { log } : {}) });
  const nodes = [];
  for (const node of workflow.nodes) nodes.push({ name: node.name, ...(await enqueueNode(config, queues, node, log)) });
  await pod.setWorkflow(workflow.record);
  return { name: workflow.record.name, models, nodes, notes: workflow.record.notes };
}
