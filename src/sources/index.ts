import type { StoredModelSpec } from '../config/model-spec.js';
import { civitaiSource } from './civitai.js';
import { gdriveSource } from './gdrive.js';
import { huggingfaceSource } from './huggingface.js';
import type { ModelSourceClient, ResolvedFile, SourceContext } from './types.js';
import { urlSource } from './url.js';

export type { ResolvedFile, SourceContext } from './types.js';

/** One client per source; a source without a client fails the type check. */
const CLIENTS: { [S in StoredModelSpec['source']]: ModelSourceClient<Extract<StoredModelSpec, { source: S }>> } = {
  civitai: civitaiSource,
  huggingface: huggingfaceSource,
  url: urlSource,
  gdrive: gdriveSource,
};

/** Resolves a model to its files through the client of its source. */
export async function resolveModel(spec: StoredModelSpec, ctx: SourceContext): Promise<ResolvedFile[]> {
  // Each client takes the spec of its own source; TypeScript cannot relate the two through the index.
  const client = CLIENTS[spec.source] as ModelSourceClient;
  return client.resolve(spec, ctx);
}
