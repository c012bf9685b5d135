import type { Config } from '../config/index.js';
import { parseShortSpec } from '../config/model-spec.js';
import { callApi } from './api-client.js';

export interface AddOptions {
  category?: string | undefined;
  filename?: string | undefined;
}

/** `phoenix add <spec>…`: enqueues models through the running board's API. Returns the exit code. */
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
  const res = await callApi(config, '/api/models', { method: 'POST', body: JSON.stringify({ models }) });
  process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
  return res.status === 202 ? 0 : res.status === 400 ? 2 : 1;
}
