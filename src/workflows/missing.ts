import { canonicalFolder } from './loaders.js';
import type { NodeTypeRef, RequiredFile } from './requirements.js';

/** Something a workflow needs that nothing provides: the user has to add a source or a node pack. */
export interface MissingItem {
  kind: 'model' | 'node';
  /** The node that needs it ("LoraLoader #12"). */
  node: string;
  /** For models: the folder and the file the loader names. */
  folder?: string;
  file?: string;
  /** For nodes: the node type nothing provides. */
  type?: string;
  message: string;
}

export interface Availability {
  /** Whether a model lands at (or already sits at) `file` in `folder`. */
  hasFile(folder: string, file: string): boolean;
  /**
   * Node types the running ComfyUI reports (its /object_info), once it runs with every node
   * installed so far; undefined before. It decides for types the workflow does not trace to a pack.
   */
  installedTypes?: ReadonlySet<string> | undefined;
}

export interface NeedsCheck {
  files: readonly RequiredFile[];
  unknownTypes: readonly NodeTypeRef[];
  stamped: boolean;
}

export interface MissingReport {
  missing: MissingItem[];
  /** Types that can only be checked against the running ComfyUI (API format, older files), not checked yet. */
  unverified: NodeTypeRef[];
}

export function findMissing(needs: NeedsCheck, available: Availability): MissingReport {
  const missing: MissingItem[] = needs.files
    .filter((f) => !available.hasFile(f.folder, f.file))
    .map((f) => ({
      kind: 'model',
      node: f.node,
      folder: canonicalFolder(f.folder),
      file: f.file,
      message: `${f.node} needs \`${f.file}\` in ${canonicalFolder(f.folder)} — add a source (a model with a url in the workflow, the manifest, or CIVITAI_MODELS / HUGGINGFACE_MODELS)`,
    }));
  const unverified: NodeTypeRef[] = [];
  for (const t of needs.unknownTypes) {
    if (available.installedTypes) {
      if (!available.installedTypes.has(t.type)) missing.push(missingType(t, 'the running ComfyUI does not know it'));
    } else if (needs.stamped) missing.push(missingType(t, 'the workflow names no cnr_id or aux_id for it'));
    else unverified.push(t);
  }
  return { missing, unverified };
}

function missingType(t: NodeTypeRef, why: string): MissingItem {
  return {
    kind: 'node',
    node: t.node,
    type: t.type,
    message: `node type \`${t.type}\` (${t.node}) is not provided by any custom node (${why}) — add its custom node (COMFY_NODES, COMFY_CUSTOM_NODE_GIT_URLS or [nodes.…] in the manifest)`,
  };
}

/**
 * Files known to be provided, matched the way a loader finds them: the same folder (legacy names
 * included) and the same path inside it. A loader naming "SDXL/x.safetensors" is not served by
 * an "x.safetensors" at the folder's top.
 */
export class FileIndex {
  private readonly paths = new Set<string>();

  add(folder: string, file: string): this {
    this.paths.add(key(folder, file));
    return this;
  }

  has(folder: string, file: string): boolean {
    return this.paths.has(key(folder, file));
  }
}

function key(folder: string, file: string): string {
  return `${canonicalFolder(folder)}/${file.replace(/\\/g, '/')}`;
}
