import type { ModelFolder } from '../config/folders.js';
import type { Config, ConfiguredModel } from '../config/index.js';
import { modelId, toStoredSpec } from '../config/model-spec.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { resolveModel } from '../sources/index.js';
import { planNodes, planWorkflows, printWorkflowPlan, type PlannedNode } from './plan-workflows.js';

/** What `phoenix plan` reports for one configured model. */
export interface PlannedModel {
  /** Where it was asked for: an environment variable or a manifest key. */
  origin: string;
  /** Deterministic model id, the same the download and organize jobs carry. */
  id: string;
  source: ConfiguredModel['spec']['source'];
  files: PlannedFile[];
  /** Why the model cannot be resolved; absent when it can. */
  error?: string;
}

export interface PlannedFile {
  name: string;
  bytes: number | undefined;
  /** The manifest's folder, else the one the source implies; undefined leaves it to the organizer. */
  category: ModelFolder | undefined;
  sha256: string | undefined;
}

/** Sources asked at once: enough to be quick, few enough not to trip rate limits. */
const PLAN_CONCURRENCY = 4;

/**
 * Resolves every configured model through its source without downloading a byte. A model that
 * fails gets `error` and the others go on; the order is the configuration's.
 */
export async function planModels(config: Config, log: Logger): Promise<PlannedModel[]> {
  const planned = new Array<PlannedModel>(config.models.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < config.models.length) {
      const index = next++;
      planned[index] = await planModel(config.models[index]!, config, log);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PLAN_CONCURRENCY, config.models.length) }, worker));
  return planned;
}

async function planModel(model: ConfiguredModel, config: Config, log: Logger): Promise<PlannedModel> {
  const { spec } = model;
  const base = { origin: model.origin, id: modelId(spec), source: spec.source };
  try {
    const files = await resolveModel(toStoredSpec(spec), {
      config,
      log: log.child({ model: base.id }),
      ...(spec.source === 'url' && spec.headers ? { secretHeaders: spec.headers } : {}),
    });
    return {
      ...base,
      files: files.map((f) => ({ name: f.name, bytes: f.bytes, category: spec.category ?? f.category, sha256: f.sha256 })),
    };
  } catch (err) {
    log.debug({ model: base.id, err }, 'model did not resolve');
    return { ...base, files: [], error: errorMessage(err) };
  }
}

/**
 * `phoenix plan [--json]`: exit 1 when a model or a registry node does not resolve, or a
 * workflow misses something.
 */
export async function runPlan(config: Config, log: Logger, json: boolean): Promise<number> {
  const [models, nodes] = await Promise.all([planModels(config, log), planNodes(config)]);
  const workflows = await planWorkflows(config, models);
  if (json) process.stdout.write(`${JSON.stringify({ models, nodes, workflows }, null, 2)}\n`);
  else {
    for (const m of models) {
      if (m.error) process.stdout.write(`FAILED  ${m.origin}: ${m.error}\n`);
      for (const f of m.files) {
        const size = f.bytes !== undefined ? `${(f.bytes / 2 ** 20).toFixed(1)} MiB` : 'size unknown';
        process.stdout.write(`model   ${f.category ?? '(folder from header)'}/${f.name}  ${size}  ${f.sha256 ?? 'no published sha256'}  (${m.origin})\n`);
      }
    }
    for (const n of nodes) process.stdout.write(nodeLine(n));
    for (const w of workflows) printWorkflowPlan(w);
  }
  const failed = models.some((m) => m.error) || nodes.some((n) => n.error) || workflows.some((w) => w.missing.length > 0);
  return failed ? 1 : 0;
}

function nodeLine(n: PlannedNode): string {
  if (n.error) return `FAILED  custom_nodes/${n.name}: ${n.error}\n`;
  return `node    custom_nodes/${n.name}  ${n.from}\n`;
}
