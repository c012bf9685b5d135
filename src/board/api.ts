import express, { type Router } from 'express';
import type { Config, ConfiguredModel } from '../config/index.js';
import { formatIssues } from '../config/manifest.js';
import { ModelSpec } from '../config/model-spec.js';
import { NodeSpec, nodeNameFromUrl } from '../config/nodes.js';
import { enqueueModels, enqueueNode } from '../producer/produce.js';
import type { Logger } from '../lib/log.js';
import { QUEUE_NAMES } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { jsonBody } from './body.js';

/** Most models one request may add. */
const MAX_MODELS_PER_REQUEST = 500;
/** Job ids are at most this long (a slug and a hash); a longer one cannot name a job. */
const MAX_JOB_ID = 200;

/**
 * POST /api/models, POST /api/nodes, GET /api/jobs/:id. Validation lists every problem and
 * enqueues nothing when there is one; runtime additions never restart ComfyUI.
 */
export function apiRouter(config: Config, queues: Queues, log?: Logger): Router {
  const router = express.Router();
  router.use(jsonBody());

  router.post('/models', async (req, res) => {
    const body: unknown = req.body;
    const listed = isObject(body) && 'models' in body;
    if (listed && !Array.isArray(body.models)) {
      res.status(400).json({ error: 'invalid request', problems: ['models: must be a list of model specs'] });
      return;
    }
    const list = listed ? (body.models as unknown[]) : [body];
    const problem =
      list.length === 0
        ? 'models: must list at least one model'
        : list.length > MAX_MODELS_PER_REQUEST
          ? `models: ${list.length} listed; at most ${MAX_MODELS_PER_REQUEST} per request`
          : undefined;
    if (problem) {
      res.status(400).json({ error: 'invalid request', problems: [problem] });
      return;
    }
    const problems: string[] = [];
    const models: ConfiguredModel[] = [];
    list.forEach((raw, i) => {
      const where = listed ? `models[${i}]` : 'model';
      if (isObject(raw) && raw.headers !== undefined) {
        problems.push(`${where}.headers: header values are secrets and are not accepted at runtime; put this model in the manifest (PROVISION_URL)`);
        return;
      }
      const parsed = ModelSpec.safeParse(raw);
      if (parsed.success) models.push({ origin: 'api', spec: parsed.data });
      else problems.push(...formatIssues(where, parsed.error));
    });
    if (problems.length > 0) {
      res.status(400).json({ error: 'invalid model spec', problems });
      return;
    }
    res.status(202).json({ models: await enqueueModels(config, queues, models, log) });
  });

  router.post('/nodes', async (req, res) => {
    const body: unknown = req.body;
    const raw = isObject(body) ? { name: nodeNameFromUrl(String(body.url ?? '')), ...body } : body;
    const parsed = NodeSpec.safeParse(raw);
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

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
