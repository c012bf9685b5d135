import { isPlainObject } from '../lib/objects.js';

/**
 * The two shapes ComfyUI writes a workflow in, read into one flat list of nodes:
 * - UI format (Workflow → Save/Export): `nodes[]` and `links`, subgraphs defined under
 *   `definitions.subgraphs[]` (each with its own `nodes[]`, nested subgraphs too), legacy group
 *   nodes under `extra.groupNodes`; nodes carry `properties` (`cnr_id`, `ver`, `aux_id`,
 *   `models[]`) and positional `widgets_values`.
 * - API format (Export (API)): `{"<id>": {"class_type", "inputs", "_meta"}}`, no properties.
 */

export type WorkflowFormat = 'ui' | 'api';

/** A model a node lists in `properties.models[]` (what ComfyUI's "missing models" dialog offers). */
export interface WorkflowModelEntry {
  name: string;
  url: string | undefined;
  directory: string | undefined;
  hash: string | undefined;
  hashType: string | undefined;
}

/** Where a node's code comes from, as the frontend stamps it in `properties`. */
export interface NodePackStamp {
  cnrId: string | undefined;
  auxId: string | undefined;
  ver: string | undefined;
}

export interface WorkflowNode {
  /** The node's id within its graph ("12"); ids repeat across subgraphs. */
  id: string;
  /** The node's class (`type` in UI format, `class_type` in API format). */
  type: string;
  /** The subgraph or group node it sits in, undefined at the top level. */
  graph: string | undefined;
  /** UI format: `widgets_values` when it is a list, read by position. */
  widgetList: readonly unknown[];
  /** API `inputs`, or UI `widgets_values` when a node saves them by name. */
  widgetsByName: Readonly<Record<string, unknown>>;
  pack: NodePackStamp;
  models: WorkflowModelEntry[];
}

export interface ParsedWorkflow {
  format: WorkflowFormat;
  nodes: WorkflowNode[];
  /** Types that are graph structure, not node classes: subgraph ids and group node instances. */
  structuralTypes: ReadonlySet<string>;
}

/** A file that is not a workflow, or not JSON. The message says what was expected. */
export class WorkflowError extends Error {
  override readonly name = 'WorkflowError';
}

const NOT_A_WORKFLOW =
  'is not a ComfyUI workflow: expected the UI format ({"nodes": [...], "links": [...]}) or the API format ' +
  '({"<id>": {"class_type": ..., "inputs": {...}}}); save it from ComfyUI with Workflow → Export or Export (API)';

/** Parses workflow JSON text. Throws WorkflowError naming what is wrong. */
export function parseWorkflow(text: string): ParsedWorkflow {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new WorkflowError(`not valid JSON: ${(err as Error).message}`);
  }
  return readWorkflow(value);
}

/** Reads an already parsed JSON value as a workflow. */
export function readWorkflow(value: unknown): ParsedWorkflow {
  if (!isPlainObject(value)) throw new WorkflowError(NOT_A_WORKFLOW);
  if (Array.isArray(value.nodes)) return readUiWorkflow(value);
  // ComfyUI's /prompt body and some tools wrap the API format as {"prompt": {...}}.
  const api = isPlainObject(value.prompt) && isApiFormat(value.prompt) ? value.prompt : value;
  if (isApiFormat(api)) return readApiWorkflow(api);
  throw new WorkflowError(NOT_A_WORKFLOW);
}

function isApiFormat(value: Record<string, unknown>): boolean {
  const entries = Object.values(value);
  return entries.length > 0 && entries.every((n) => isPlainObject(n) && typeof n.class_type === 'string' && (n.inputs === undefined || isPlainObject(n.inputs)));
}

function readApiWorkflow(value: Record<string, unknown>): ParsedWorkflow {
  const nodes = Object.entries(value).map(([id, raw]): WorkflowNode => {
    const node = raw as { class_type: string; inputs?: Record<string, unknown> };
    return {
      id,
      type: node.class_type,
      graph: undefined,
      widgetList: [],
      widgetsByName: node.inputs ?? {},
      pack: { cnrId: undefined, auxId: undefined, ver: undefined },
      models: [],
    };
  });
  return { format: 'api', nodes, structuralTypes: new Set() };
}

function readUiWorkflow(root: Record<string, unknown>): ParsedWorkflow {
  const nodes: WorkflowNode[] = [];
  const structural = new Set<string>();
  const problems: string[] = [];
  readNodes(root.nodes, undefined, nodes, problems);

  // Subgraph definitions live under definitions.subgraphs; a definition may carry its own
  // definitions (nested subgraphs), so every level is walked.
  const pending: unknown[] = [root.definitions];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const definitions = pending.pop();
    if (!isPlainObject(definitions) || !Array.isArray(definitions.subgraphs)) continue;
    for (const subgraph of definitions.subgraphs) {
      if (!isPlainObject(subgraph) || typeof subgraph.id !== 'string' || seen.has(subgraph.id)) continue;
      seen.add(subgraph.id);
      structural.add(subgraph.id);
      const label = `subgraph "${typeof subgraph.name === 'string' ? subgraph.name : subgraph.id}"`;
      readNodes(subgraph.nodes, label, nodes, problems);
      pending.push(subgraph.definitions);
    }
  }

  // Legacy group nodes: instances are typed `workflow>Name` (or `workflow/Name`).
  const groupNodes = isPlainObject(root.extra) && isPlainObject(root.extra.groupNodes) ? root.extra.groupNodes : {};
  for (const [name, group] of Object.entries(groupNodes)) {
    structural.add(`workflow>${name}`).add(`workflow/${name}`);
    // A group node's inner nodes carry an `index` instead of an id.
    if (isPlainObject(group)) readNodes(group.nodes, `group node "${name}"`, nodes, problems, true);
  }

  if (problems.length > 0) throw new WorkflowError(`has malformed nodes: ${problems.slice(0, 5).join('; ')}`);
  return { format: 'ui', nodes, structuralTypes: structural };
}

function readNodes(list: unknown, graph: string | undefined, out: WorkflowNode[], problems: string[], indexed = false): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) {
    problems.push(`${graph ?? 'the workflow'}: "nodes" is not a list`);
    return;
  }
  list.forEach((raw, i) => {
    const id = isPlainObject(raw) ? (raw.id ?? (indexed ? (raw.index ?? i) : undefined)) : undefined;
    if (!isPlainObject(raw) || typeof raw.type !== 'string' || (typeof id !== 'number' && typeof id !== 'string')) {
      problems.push(`${graph ? `${graph} ` : ''}nodes[${i}] has no "id" and "type"`);
      return;
    }
    const properties = isPlainObject(raw.properties) ? raw.properties : {};
    const widgets = raw.widgets_values;
    out.push({
      id: String(id),
      type: raw.type,
      graph,
      widgetList: Array.isArray(widgets) ? widgets : [],
      widgetsByName: isPlainObject(widgets) ? widgets : {},
      pack: { cnrId: text(properties.cnr_id), auxId: text(properties.aux_id), ver: text(properties.ver) },
      models: Array.isArray(properties.models) ? properties.models.flatMap(modelEntry) : [],
    });
  });
}

function modelEntry(raw: unknown): WorkflowModelEntry[] {
  if (!isPlainObject(raw) || !text(raw.name)) return [];
  return [
    {
      name: text(raw.name)!,
      url: text(raw.url),
      directory: text(raw.directory),
      hash: text(raw.hash),
      hashType: text(raw.hash_type),
    },
  ];
}

/** How messages name a node: `LoraLoader #12`, with its subgraph when it sits in one. */
export function nodeLabel(node: Pick<WorkflowNode, 'type' | 'id' | 'graph'>): string {
  return `${node.type} #${node.id}${node.graph ? ` in ${node.graph}` : ''}`;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}
