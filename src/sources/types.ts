import type { ModelFolder } from '../config/folders.js';
import type { Config } from '../config/index.js';
import type { StoredModelSpec } from '../config/model-spec.js';
import type { DownloadRequest } from '../download/types.js';
import type { Logger } from '../lib/log.js';

/** One file a model resolves to, known before a byte of it is downloaded. */
export interface ResolvedFile {
  /** Sanitised file name it will have in its folder. */
  name: string;
  bytes?: number;
  /** Lowercase hex SHA-256 the source publishes, checked by the organize gate. */
  sha256?: string;
  /** ComfyUI folder implied by the source's own metadata (e.g. CivitAI's model type). */
  category?: ModelFolder;
  request: DownloadRequest;
}

export interface SourceContext {
  config: Config;
  log: Logger;
  signal?: AbortSignal;
  /** Header values for a url model, looked up in the configuration by model id (never from Redis). */
  secretHeaders?: Record<string, string>;
}

/**
 * One remote source (CivitAI, Hugging Face, a plain URL, Google Drive). Adding a source is adding
 * one file that implements this and one line in sources/index.ts.
 */
export interface ModelSourceClient<S extends StoredModelSpec = StoredModelSpec> {
  readonly source: S['source'];
  /** Metadata only: names, sizes, checksums, folder hints and how to download each file. */
  resolve(spec: S, ctx: SourceContext): Promise<ResolvedFile[]>;
}
