import { civitaiSource } from './civitai.js';
import { gdriveSource } from './gdrive.js';
import { huggingfaceSource } from './huggingface.js';
import type { ModelSourceClient, ResolvedFile, SourceContext } from './types.js';
import { urlSource } from './url.js';
import type { StoredModelSpec } from '../config/model-spec.js';
import { UserError } from '../lib/errors.js';

export type { ResolvedFile, SourceContext } from './types.js';

const CLIENTS: Partial<{ [S in StoredModelSpec['source']]: ModelSourceClient<Extract<StoredModelSpec, { source: S }>> }> = {
  civitai: civitaiSource,
  huggingface: huggingfaceSource,
  url: urlSource,
  gdrive: gdriveSource,
};

/** Resolves a model to its files through the client of its source. */
export async function resolveModel(spec: StoredModelSpec, ctx: SourceContext): Promise<ResolvedFile[]> {
  const client = CLIENTS[spec.source] as ModelSourceClient | undefined;
  if (!client) throw new UserError(`source "${spec.source}" is not available in this build`);
  return client.resolve(spec, ctx);
}
