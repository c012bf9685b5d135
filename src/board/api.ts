import express, { type Router } from 'express';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { formatIssues } from '../config/manifest.js';
import { nodeNameFromUrl, parseNodeSpec } from '../config/nodes.js';
import type { Logger } from '../lib/log.js';
import { isPlainObject } from '../lib/objects.js';
import { hasUrlCredentials } from '../lib/url-credentials.js';
import { enqueueModels, enqueueNode } from '../producer/produce.js';
import { QUEUE_NAMES } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { jsonBody } from './body.js';
import { parseModels } from './model-input.js';
import { workflowsRoute } from './workflows-api.js';

/** Job ids are at most this long (a slug and a hash); a longer one cannot name a job. */
const MAX_JOB_ID = 200;

/**
 * POST /api/models, POST /api/nodes, POST /api/workflows, GET /api/jobs/:id. Validation lists
 * every problem and enqueues nothing when there is one; runtime models never restart ComfyUI
 * (new custom nodes restart it once, since it loads them only at start).
 */
export function apiRouter(config: Config, queues: Queues, pod: PodState, log: Logger): Router {
  const router = express.Router();
  // Before the JSON parser: a workflow is read as text, so a broken one is reported as such.
  router.post('/workflows', express.text({ type: () => true, limit: '32mb' }), workflowsRoute(config, queues, pod, log));
  router.use(jsonBody());

  router.post('/models', async (req, res) => {
    const { models, problems } = parseModels(req.body, 'api');
    if (problems.length > 0) {
      res.status(400).json({ error: 'invalid model spec', problems });
      return;
    }
    res.status(202).json({ models: await enqueueModels(config, queues, models, { log }) });
  });

  router.post('/nodes', async (req, res) => {
    const body: unknown = req.body;
    const raw = isPlainObject(body) ? { name: nodeNameFromUrl(String(body.url ?? '')), ...body } : body;
    if (isPlainObject(raw) && typeof raw.url === 'string' && hasUrlCredentials(raw.url)) {
      res.status(400).json({ error: 'invalid node spec', problems: ['node.url: credentials inside a URL are secrets and are not accepted at runtime; put this node in COMFY_CUSTOM_NODE_GIT_URLS or the manifest'] });
      return;
    }
    const parsed = parseNodeSpec(raw);
    if (!parsed.success) {
      res.status(400).json({ error: 'invalid node spec', problems: formatIssues('node', parsed.error) });
      return;
    }
    res.status(202).json(await enqueueNode(config, queues, parsed.data, log));
  });

  router.get('/jobs/:id', async (req, res) => {
    if (req.params.id.length > MAX_JOB_ID) {
      res.status(400).json({ error: 'invalid request', problems: [`id: ${req.params.id.length} characters; job ids have at most ${MAX_JOB_ID}`] });
      return;
    }
    for (const name of QUEUE_NAMES) {
      const job = await queues.queue[name].getJob(req.params.id);
      if (!job) continue;
      res.json({
        id: job.id,
        queue: name,
        name: job.name,
        state: await job.getState(),
        progress: job.progress,
        attemptsMade: job.attemptsMade,
        attempts: job.opts.attempts ?? 1,
        failedReason: job.failedReason ?? null,
        returnvalue: job.returnvalue ?? null,
        createdAt: job.timestamp,
        processedOn: job.processedOn ?? null,
        finishedOn: job.finishedOn ?? null,
      });
      return;
    }
    res.status(404).json({ error: `no job ${req.params.id}` });
  });

  return router;
}

