import express, { type RequestHandler, type Router } from 'express';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config, ConfiguredModel } from '../config/index.js';
import { formatIssues } from '../config/manifest.js';
import { ModelSpec } from '../config/model-spec.js';
import { nodeNameFromUrl, parseNodeSpec } from '../config/nodes.js';
import type { Logger } from '../lib/log.js';
import { enqueueModels, enqueueNode } from '../producer/produce.js';
import { QUEUE_NAMES } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { workflowsRoute } from './workflows-api.js';

/**
 * POST /api/models, POST /api/nodes, POST /api/workflows, GET /api/jobs/:id. Validation lists
 * every problem and enqueues nothing when there is one; runtime models never restart ComfyUI
 * (new custom nodes restart it once, since it loads them only at start).
 */
export function apiRouter(config: Config, queues: Queues, pod: PodState, log: Logger): Router {
  const router = express.Router();
  // Before the JSON parser: a workflow is read as text, so a broken one is reported as such.
  router.post('/workflows', express.text({ type: () => true, limit: '32mb' }), workflowsRoute(config, queues, pod, log));
  router.use(express.json({ limit: '256kb' }), requireJsonBody);

  router.post('/models', async (req, res) => {
    const body: unknown = req.body;
    const list = isObject(body) && Array.isArray(body.models) ? (body.models as unknown[]) : [body];
    if (list.length === 0) {
      res.status(400).json({ error: 'invalid request', problems: ['models: must list at least one model'] });
      return;
    }
    const problems: string[] = [];
    const models: ConfiguredModel[] = [];
    list.forEach((raw, i) => {
      const where = list.length > 1 || Array.isArray((body as { models?: unknown }).models) ? `models[${i}]` : 'model';
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
    res.status(202).json({ models: await enqueueModels(config, queues, models) });
  });

  router.post('/nodes', async (req, res) => {
    const body: unknown = req.body;
    const raw = isObject(body) ? { name: nodeNameFromUrl(String(body.url ?? '')), ...body } : body;
    const parsed = parseNodeSpec(raw);
    if (!parsed.success) {
      res.status(400).json({ error: 'invalid node spec', problems: formatIssues('node', parsed.error) });
      return;
    }
    res.status(202).json(await enqueueNode(queues, parsed.data));
  });

  router.get('/jobs/:id', async (req, res) => {
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

/**
 * Every POST here takes a JSON body: one sent as another type, or none at all, is bad input
 * answered like any other (400 with the problem named), never a crash on an undefined body.
 */
const requireJsonBody: RequestHandler = (req, res, next) => {
  if (req.method !== 'POST') {
    next();
    return;
  }
  const type = req.headers['content-type'];
  const empty = !req.headers['transfer-encoding'] && Number(req.headers['content-length'] ?? 0) === 0;
  const problem = empty
    ? 'body: missing; send a JSON object'
    : !req.is('application/json')
      ? `body: must be JSON (Content-Type: application/json), not ${type ?? 'untyped'}`
      : undefined;
  if (problem) res.status(400).json({ error: 'invalid request', problems: [problem] });
  else next();
};

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
