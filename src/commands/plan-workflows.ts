import type { Config } from '../config/index.js';
import { describeNode, isRegistryNode, type NodeSpec } from '../config/nodes.js';
import { errorMessage } from '../lib/errors.js';
import { resolveRegistryNode } from '../nodes/registry.js';
import { presentOnDisk } from '../queue/workflow-progress.js';
import { FileIndex, findMissing, type MissingItem } from '../workflows/missing.js';
import type { NodeTypeRef } from '../workflows/requirements.js';

export interface PlannedNode {
  name: string;
  source: 'git' | 'registry';
  /** Where it comes from: the repository and ref, or the registry id and the release it resolves to. */
  from: string;
  spec: NodeSpec;
  error?: string;
}

/** Each custom node; a registry node is looked up (its release exists, where its zip is), not downloaded. */
export async function planNodes(config: Config): Promise<PlannedNode[]> {
  return Promise.all(
    config.nodes.map(async (node): Promise<PlannedNode> => {
      const base = { name: node.name, spec: node, from: describeNode(node) };
      if (!isRegistryNode(node)) return { ...base, source: 'git' };
      try {
        const release = await resolveRegistryNode(node, config.endpoints.registry, AbortSignal.timeout(60_000));
        return { ...base, source: 'registry', from: `registry ${node.registry}@${release.version}${release.deprecated ? ' (deprecated)' : ''}` };
      } catch (err) {
        return { ...base, source: 'registry', error: errorMessage(err) };
      }
    }),
  );
}

export interface PlannedWorkflow {
  name: string;
  origin: string;
  format: 'ui' | 'api';
  models: string[];
  nodes: string[];
  missing: MissingItem[];
  unverified: NodeTypeRef[];
  notes: string[];
}

/**
 * What each workflow would still miss: loader files no planned model lands at (by the names the
 * sources resolved) and that are not on disk yet, and node types nothing provides.
 */
export async function planWorkflows(
  config: Config,
  models: readonly { files: readonly { name: string; category: string | undefined }[] }[],
): Promise<PlannedWorkflow[]> {
  const index = new FileIndex();
  for (const m of models) for (const f of m.files) if (f.category) index.add(f.category, f.name);
  return Promise.all(
    config.workflows.map(async (w) => {
      const onDisk = new FileIndex();
      for (const f of w.files) if (!index.has(f.folder, f.file) && (await presentOnDisk(config, f.folder, f.file))) onDisk.add(f.folder, f.file);
      const { missing, unverified } = findMissing(w, { hasFile: (folder, file) => index.has(folder, file) || onDisk.has(folder, file) });
      return { name: w.name, origin: w.origin, format: w.format, models: w.models, nodes: w.nodes, missing, unverified, notes: w.notes };
    }),
  );
}

export function printWorkflowPlan(w: PlannedWorkflow): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`workflow ${w.name} (${w.origin}, ${w.format} format): ${w.models.length} models, ${w.nodes.length} custom nodes`);
  for (const m of w.missing) out(`  MISSING ${m.message}`);
  for (const t of w.unverified) out(`  check   node type \`${t.type}\` (${t.node}): checked against ComfyUI once it runs`);
  for (const n of w.notes) out(`  note    ${n}`);
}
