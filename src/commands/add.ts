import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/index.js';
import { parseShortSpec } from '../config/model-spec.js';
import { callApi } from './api-client.js';

export interface AddOptions {
  category?: string | undefined;
  filename?: string | undefined;
  /** Workflow files to add instead of models (`--workflow FILE`), and the name of a single one. */
  workflow?: readonly string[] | undefined;
  name?: string | undefined;
}

/** `phoenix add <spec>…` or `phoenix add --workflow FILE`: enqueues through the running board's API. Returns the exit code. */
export async function runAdd(config: Config, specs: readonly string[], options: AddOptions): Promise<number> {
  if (options.workflow && options.workflow.length > 0) return addWorkflows(config, options.workflow, options.name);
  if (specs.length === 0) {
    process.stderr.write('phoenix add: give a CivitAI version id or AIR, owner/repo[/file], a URL, or --workflow FILE\n');
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

/** Each file goes to POST /api/workflows, named after the file (or `--name` for a single one). */
async function addWorkflows(config: Config, files: readonly string[], name: string | undefined): Promise<number> {
  let worst = 0;
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      process.stderr.write(`phoenix add: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
      worst = Math.max(worst, 2);
      continue;
    }
    const workflowName = files.length === 1 && name ? name : path.basename(file).replace(/\.json$/i, '');
    const res = await callApi(config, `/api/workflows?name=${encodeURIComponent(workflowName)}`, { method: 'POST', body: text });
    process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
    worst = Math.max(worst, res.status === 202 ? 0 : res.status === 400 ? 2 : 1);
  }
  return worst;
}
