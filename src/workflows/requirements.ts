import { nodeLabel, type ParsedWorkflow, type WorkflowFormat, type WorkflowModelEntry } from './graph.js';
import { canonicalFolder, loaderFiles, type LoaderFile } from './loaders.js';

/** Node types that only exist in the frontend: they never reach ComfyUI's server. */
const FRONTEND_ONLY = new Set(['Reroute', 'Note', 'MarkdownNote', 'PrimitiveNode']);

/** ComfyUI itself, as the frontend stamps its own nodes' `cnr_id`. */
const COMFY_CORE = 'comfy-core';

export interface RequiredModel extends WorkflowModelEntry {
  /** The node that lists it ("UNETLoader #38 in subgraph …"). */
  node: string;
}

export interface RequiredFile extends LoaderFile {
  node: string;
}

/** A node pack a node's `properties` name: a Comfy Registry id and/or a GitHub `owner/repo`, with `ver`. */
export interface RequiredPack {
  node: string;
  type: string;
  cnrId: string | undefined;
  auxId: string | undefined;
  ver: string | undefined;
}

export interface NodeTypeRef {
  type: string;
  node: string;
}

/** What a workflow needs to run: model files, the packs of its custom nodes, and types nothing names. */
export interface WorkflowRequirements {
  format: WorkflowFormat;
  models: RequiredModel[];
  /** Files loader widgets name, once each. */
  files: RequiredFile[];
  /** Packs once each (by id, repository and version). */
  packs: RequiredPack[];
  /** Node types no `cnr_id`/`aux_id` traces to a pack (and not ComfyUI's own by stamp), once each. */
  unknownTypes: NodeTypeRef[];
  /**
   * Whether the frontend stamped the nodes with `cnr_id`/`aux_id` (current ComfyUI does, its own
   * nodes as "comfy-core"): then an unstamped type is known to be a custom node nothing names.
   * API-format and older files carry no stamps: their types can only be checked against the
   * running ComfyUI.
   */
  stamped: boolean;
}

export function workflowRequirements(workflow: ParsedWorkflow): WorkflowRequirements {
  const models: RequiredModel[] = [];
  const files = new Map<string, RequiredFile>();
  const packs = new Map<string, RequiredPack>();
  const unknown = new Map<string, NodeTypeRef>();
  let stamped = false;

  for (const node of workflow.nodes) {
    const label = nodeLabel(node);
    for (const entry of node.models) models.push({ ...entry, node: label });
    for (const file of loaderFiles(node)) {
      const key = `${canonicalFolder(file.folder)}/${file.file}`;
      if (!files.has(key)) files.set(key, { ...file, node: label });
    }
    if (FRONTEND_ONLY.has(node.type) || workflow.structuralTypes.has(node.type)) continue;
    const { cnrId, auxId, ver } = node.pack;
    if (cnrId || auxId) stamped = true;
    if (cnrId === COMFY_CORE) continue;
    if (cnrId || auxId) {
      const key = `${cnrId ?? ''}|${auxId ?? ''}|${ver ?? ''}`;
      if (!packs.has(key)) packs.set(key, { node: label, type: node.type, cnrId, auxId, ver });
      continue;
    }
    if (!unknown.has(node.type)) unknown.set(node.type, { type: node.type, node: label });
  }
  return {
    format: workflow.format,
    models,
    files: [...files.values()],
    packs: [...packs.values()],
    unknownTypes: [...unknown.values()],
    stamped: workflow.format === 'ui' && stamped,
  };
}
