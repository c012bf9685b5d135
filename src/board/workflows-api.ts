import type { RequestHandler } from 'express';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { runtimeWorkflow } from '../config/workflow-load.js';
import { Redactor, type Logger } from '../lib/log.js';
import { shortHash } from '../lib/names.js';
import { enqueueWorkflow } from '../producer/workflows.js';
import { eventSender } from '../queue/events.js';
import type { Queues } from '../queue/queues.js';
import { workflowStatuses } from '../queue/workflow-progress.js';

/**
 * POST /api/workflows?name=…: the body is a workflow as ComfyUI saves it (UI or API format). Its
 * models and node packs are enqueued (202, with what it still misses); a body that is not a
 * workflow, or names something invalid, is refused (400) and nothing is enqueued. Without
 * `name`, the workflow is named after its content.
 */
export function workflowsRoute(config: Config, queues: Queues, pod: PodState, log: Logger): RequestHandler {
  const send = eventSender(config.webhook ? queues.queue.webhooks : undefined, new Redactor(config.secrets), log);
  return async (req, res) => {
    const text = typeof req.body === 'string' ? req.body : '';
    const given = typeof req.query.name === 'string' ? req.query.name.trim() : '';
    const name = given || `workflow-${shortHash(text, 8)}`;
    const workflow = runtimeWorkflow(text, name, { endpoints: config.endpoints, models: config.models, nodes: config.nodes });
    if ('problems' in workflow) {
      res.status(400).json({ error: 'invalid workflow', problems: workflow.problems });
      return;
    }
    const enqueued = await enqueueWorkflow(config, queues, pod, workflow, log);
    const status = (await workflowStatuses(config, queues, pod)).find((w) => w.name === name);
    // Everything it needs may be in place already: then no job will finish to announce it.
    if (status?.ready && (await pod.announceOnce(`workflow:${name}`))) {
      send({ type: 'workflow.ready', workflow: { name, origin: 'api', models: status.models, nodes: status.nodes } });
    }
    res.status(202).json({ workflow: { ...enqueued, ready: status?.ready ?? false, missing: status?.missing ?? [], unverified: status?.unverified ?? [] } });
  };
}
