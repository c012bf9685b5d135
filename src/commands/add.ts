import type { Config } from '../config/index.js';
import { parseShortSpec } from '../config/model-spec.js';
import { callApi } from './api-client.js';

export interface AddOptions {
  category?: string | undefined;
  filename?: string | undefined;
  /** Add to the fleet's pods (POST /api/fleet/models) instead of this pod. */
  fleet?: boolean | undefined;
  /** With `fleet`: only these pod ids (comma-separated) … */
  pods?: string | undefined;
  /** … or only the pods with these labels (`k=v,…`). */
  labels?: string | undefined;
}

/**
 * `phoenix add <spec>…`: enqueues models through the running board's API; with `--fleet`, on every
 * live pod of the fleet (or those `--pods` or `--labels` choose) through the fleet API. Returns the exit code.
 */
export async function runAdd(config: Config, specs: readonly string[], options: AddOptions): Promise<number> {
  if (specs.length === 0) {
    process.stderr.write('phoenix add: give a CivitAI version id, owner/repo[/file] or a URL\n');
    return 2;
  }
  const models = specs.map((s) => ({
    ...parseShortSpec(s, config.endpoints),
    ...(options.category ? { category: options.category } : {}),
    ...(options.filename ? { filename: options.filename } : {}),
  }));
  const body = options.fleet
    ? {
        models,
        ...(options.pods ? { pods: options.pods.split(',').map((p) => p.trim()).filter(Boolean) } : {}),
        ...(options.labels ? { labels: options.labels } : {}),
      }
    : { models };
  const res = await callApi(config, options.fleet ? '/api/fleet/models' : '/api/models', { method: 'POST', body: JSON.stringify(body) });
  process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
  return res.status === 202 ? 0 : res.status === 400 ? 2 : 1;
}
