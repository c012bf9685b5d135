import type { ConfiguredModel } from '../config/index.js';
import { formatIssues } from '../config/manifest.js';
import { ModelSpec } from '../config/model-spec.js';
import { isPlainObject } from '../lib/objects.js';
import { hasUrlCredentials } from '../lib/url-credentials.js';

/** Most models one request may add. */
const MAX_MODELS_PER_REQUEST = 500;

/**
 * Models in a request body: one spec, or `{"models": [...]}`. Every problem is listed; header
 * values and credentials inside URLs are refused (they would have to be stored). `extraKeys` are request fields beside the
 * spec (such as the fleet's `pods` and `labels`) that are not part of it.
 */
export function parseModels(body: unknown, origin: string, extraKeys: readonly string[] = []): { models: ConfiguredModel[]; problems: string[] } {
  const bare = isPlainObject(body) ? Object.fromEntries(Object.entries(body).filter(([k]) => !extraKeys.includes(k))) : body;
  const listed = isPlainObject(bare) && 'models' in bare;
  if (listed && !Array.isArray(bare.models)) return { models: [], problems: ['models: must be a list of model specs'] };
  const list = listed ? (bare.models as unknown[]) : [bare];
  if (list.length === 0) return { models: [], problems: ['models: must list at least one model'] };
  if (list.length > MAX_MODELS_PER_REQUEST) {
    return { models: [], problems: [`models: ${list.length} listed; at most ${MAX_MODELS_PER_REQUEST} per request`] };
  }
  const problems: string[] = [];
  const models: ConfiguredModel[] = [];
  list.forEach((raw, i) => {
    const where = list.length > 1 || listed ? `models[${i}]` : 'model';
    if (isPlainObject(raw) && raw.headers !== undefined) {
      problems.push(`${where}.headers: header values are secrets and are not accepted at runtime; put this model in the manifest (PROVISION_URL)`);
      return;
    }
    if (isPlainObject(raw) && typeof raw.url === 'string' && hasUrlCredentials(raw.url)) {
      problems.push(`${where}.url: credentials inside a URL are secrets and are not accepted at runtime; put this model in the manifest (PROVISION_URL)`);
      return;
    }
    const parsed = ModelSpec.safeParse(raw);
    if (parsed.success) models.push({ origin, spec: parsed.data });
    else problems.push(...formatIssues(where, parsed.error));
  });
  return { models, problems };
}
