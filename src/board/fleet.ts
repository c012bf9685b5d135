import express, { type Router } from 'express';
import { parseLabels } from '../config/fleet.js';
import type { FleetPod, PodRegistry } from '../fleet/registry.js';
import { isPlainObject } from '../lib/objects.js';
import { enqueueFleetModels } from '../producer/fleet.js';
import type { FleetModelsResult, FleetQueues } from '../queue/fleet.js';
import { jsonBody } from './body.js';
import { parseModels } from './model-input.js';

export interface FleetParts {
  registry: PodRegistry;
  queues: FleetQueues;
}

/**
 * The fleet's API: GET /api/fleet (every pod, stale ones marked), POST /api/fleet/models (a model
 * for every live pod, or those chosen by id or label, as one flow) and GET /api/fleet/jobs/:id.
 */
export function fleetApiRouter(fleet: FleetParts): Router {
  const router = express.Router();
  router.use(jsonBody());

  router.get('/', async (_req, res) => {
    res.json({ pods: (await fleet.registry.list()).map(podView) });
  });

  router.post('/models', async (req, res) => {
    const body: unknown = req.body;
    const { models, problems } = parseModels(body, 'fleet', ['pods', 'labels']);
    const selection = parseSelection(isPlainObject(body) ? body : {}, problems);
    const live = (await fleet.registry.list()).filter((p) => !p.stale);
    for (const id of selection.ids ?? []) {
      if (!live.some((p) => p.id === id)) problems.push(`pods: "${id}" is not a live pod of the fleet`);
    }
    const chosen = live.filter(
      (p) => (!selection.ids || selection.ids.includes(p.id)) && Object.entries(selection.labels).every(([k, v]) => p.labels[k] === v),
    );
    if (problems.length === 0 && chosen.length === 0) problems.push('pods: no live pod matches (see GET /api/fleet)');
    if (problems.length > 0) {
      res.status(400).json({ error: 'invalid fleet request', problems });
      return;
    }
    const added = await enqueueFleetModels(fleet.queues, models, chosen.map((p) => p.id));
    res.status(202).json({ ...added, models: models.map((m) => m.spec) });
  });

  router.get('/jobs/:id', async (req, res) => {
    const job = await fleet.queues.fleet.getJob(req.params.id);
    if (!job) {
      res.status(404).json({ error: `no fleet job ${req.params.id}` });
      return;
    }
    const counts = await job.getDependenciesCount();
    res.json({
      id: job.id,
      state: await job.getState(),
      pods: (job.data as { pods: string[] }).pods,
      // Pods that have not answered yet.
      pending: counts.unprocessed ?? 0,
      result: (job.returnvalue as FleetModelsResult | null) ?? null,
    });
  });

  return router;
}

/** The pods a request names: `pods` (ids) and `labels` (`{"k":"v"}` or `"k=v,…"`), both optional. */
function parseSelection(body: Record<string, unknown>, problems: string[]): { ids: string[] | undefined; labels: Record<string, string> } {
  let ids: string[] | undefined;
  if (body.pods !== undefined) {
    if (Array.isArray(body.pods) && body.pods.every((p) => typeof p === 'string') && body.pods.length > 0) ids = body.pods as string[];
    else problems.push('pods: must be a non-empty list of pod ids');
  }
  let labels: Record<string, string> = {};
  if (typeof body.labels === 'string') labels = parseLabels(body.labels, problems, 'labels');
  else if (isPlainObject(body.labels) && Object.values(body.labels).every((v) => typeof v === 'string')) {
    labels = parseLabels(Object.entries(body.labels).map(([k, v]) => `${k}=${String(v)}`).join(','), problems, 'labels');
  } else if (body.labels !== undefined) problems.push('labels: must be {"key": "value"} or "key=value,…"');
  return { ids, labels };
}

export interface PodView {
  id: string;
  ready: boolean;
  comfyui: string;
  models: { ready: number; total: number; failed: number };
  gpus: FleetPod['gpus'];
  labels: Record<string, string>;
  versions: Record<string, string>;
  lastHeartbeat: string;
  stale: boolean;
}

function podView(p: FleetPod): PodView {
  return {
    id: p.id,
    ready: p.ready && !p.stale,
    comfyui: p.comfyui,
    models: p.models,
    gpus: p.gpus,
    labels: p.labels,
    versions: p.versions,
    lastHeartbeat: new Date(p.lastHeartbeat).toISOString(),
    stale: p.stale,
  };
}

/** GET /fleet: the fleet at a glance, refreshed every five seconds. */
export function fleetPage(registry: PodRegistry): express.RequestHandler {
  return async (_req, res) => {
    const pods = (await registry.list()).map(podView);
    const rows = pods
      .map(
        (p) =>
          `<tr class="${p.stale ? 'stale' : ''}"><td>${esc(p.id)}</td><td>${p.stale ? 'stale' : p.ready ? 'ready' : 'provisioning'}</td>` +
          `<td>${esc(p.comfyui)}</td><td>${p.models.ready}/${p.models.total}${p.models.failed ? ` (${p.models.failed} failed)` : ''}</td>` +
          `<td>${esc(p.gpus.map((g) => g.name).join(', ') || '—')}</td>` +
          `<td>${esc(Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(', '))}</td>` +
          `<td>${esc(p.versions.phoenix ?? '')}</td><td>${esc(p.lastHeartbeat)}</td></tr>`,
      )
      .join('\n');
    res.type('html').send(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>Phoenix fleet</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.stale{color:#999}</style>
</head><body><h1>Phoenix fleet</h1><p>${pods.filter((p) => !p.stale).length} live of ${pods.length} pods · <a href="board/">queues of every pod</a></p>
<table><thead><tr><th>pod</th><th>state</th><th>ComfyUI</th><th>models ready</th><th>GPU</th><th>labels</th><th>version</th><th>last heartbeat</th></tr></thead>
<tbody>
${rows}
</tbody></table></body></html>
`);
  };
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
