import type { Config } from '../config/index.js';
import { modelId, type StoredModelSpec } from '../config/model-spec.js';
import { isRegistryNode, toStoredNode, type GitNodeSpec } from '../config/nodes.js';
import { UserError } from '../lib/errors.js';
import { hasUrlCredentials, redactUrl } from '../lib/url-credentials.js';

export interface ModelWithSecrets {
  /** The spec with its whole URL, for this process's memory only. */
  spec: StoredModelSpec;
  /** Header values of a url model. */
  secretHeaders?: Record<string, string>;
}

/**
 * What only the configuration holds of a model: its whole URL (credentials are `***` in job data)
 * and its header values. Taken from the configured model with this very id and stored URL, so a
 * job that names another URL, or borrows another model's id, gets neither.
 */
export function withConfiguredSecrets(config: Config, spec: StoredModelSpec): ModelWithSecrets {
  if (spec.source !== 'url' && spec.source !== 'gdrive') return { spec };
  const id = modelId(spec);
  for (const { spec: configured } of config.models) {
    if (configured.source !== spec.source || redactUrl(configured.url) !== spec.url || modelId(configured) !== id) continue;
    const headers = configured.source === 'url' ? configured.headers : undefined;
    return { spec: { ...spec, url: configured.url }, ...(headers ? { secretHeaders: { ...headers } } : {}) };
  }
  if (hasUrlCredentials(spec.url)) {
    throw new UserError(`${spec.url} carries credentials that only the pod's configuration holds, and it has no such model: put it in the manifest (PROVISION_URL)`);
  }
  return { spec };
}

/** The configured node a job names (same name, same stored URL), with its whole URL; refused when only the configuration could fill in its credentials. */
export function configuredNode(config: Config, node: GitNodeSpec): GitNodeSpec {
  const configured = config.nodes.find(
    (n): n is GitNodeSpec => !isRegistryNode(n) && n.name === node.name && toStoredNode(n).url === node.url && n.ref === node.ref,
  );
  if (configured) return configured;
  if (hasUrlCredentials(node.url)) {
    throw new UserError(`custom node ${node.name}: ${node.url} carries credentials that only the pod's configuration holds, and it has no such node: put it in COMFY_CUSTOM_NODE_GIT_URLS or the manifest`);
  }
  return node;
}
