import { globToRegExp } from '../lib/glob.js';
import { baseName, canonicalFolder } from '../workflows/loaders.js';
import type { NodeTypeRef, RequiredFile, WorkflowRequirements } from '../workflows/requirements.js';
import { HF_DEFAULT_INCLUDE, expectedFileName, modelId, type ConfiguredModel, type ModelSpec, type SpecEndpoints } from './model-spec.js';
import { describeNode, isRegistryNode, type NodeSpec } from './nodes.js';
import { modelSpecOf, nodeSpecOf } from './workflow-specs.js';

/**
 * What Phoenix keeps of a workflow (in the configuration, and in Redis for ones added at
 * runtime): the models and nodes provisioned for it and what to check it against. No secrets.
 */
export interface WorkflowRecord {
  name: string;
  /** Where it came from: PROVISION_WORKFLOWS[i], a manifest key, or "api". */
  origin: string;
  format: 'ui' | 'api';
  /** Model ids (the same as the download and organize jobs carry). */
  models: string[];
  /** Custom node folders under custom_nodes/. */
  nodes: string[];
  /** Files its loaders name: missing unless a model lands there or it is already on disk. */
  files: RequiredFile[];
  /** Node types it does not trace to a pack; see WorkflowRequirements.stamped. */
  unknownTypes: NodeTypeRef[];
  stamped: boolean;
  /** Things worth knowing (an unpinned pack, a model another entry provides). */
  notes: string[];
}

export const WORKFLOW_NAME = /^[\w][\w .-]{0,99}$/;
export const WORKFLOW_NAME_RULE = 'must be 1–100 letters, digits, spaces, ".", "-" or "_"';

/**
 * Collects workflows on top of the models and nodes configured otherwise, so that one file asked
 * for twice is one download and one node pack is one install:
 * - a workflow model with the id of one already asked for (same source, folder and name), landing
 *   at the same folder and file name, or a file of a whole Hugging Face repository already asked
 *   for, is that model; a sha256 either one pins is kept, and two pins that differ are a problem;
 * - a pack for a folder already taken: the configuration's own node wins; between workflows, the
 *   newer registry release wins, otherwise the first one asked for.
 */
export class WorkflowCatalog {
  private readonly models = new Map<string, ConfiguredModel>();
  private readonly byFile = new Map<string, string>();
  private readonly nodes = new Map<string, NodeSpec>();
  private readonly configuredNodes = new Set<string>();
  readonly records: WorkflowRecord[] = [];

  constructor(
    private readonly endpoints: SpecEndpoints & { github: string },
    configuredModels: readonly ConfiguredModel[],
    configuredNodes: readonly NodeSpec[],
  ) {
    for (const m of configuredModels) this.addModel(m);
    for (const n of configuredNodes) {
      this.nodes.set(n.name, n);
      this.configuredNodes.add(n.name);
    }
  }

  /** Every model: the configured ones, then what workflows add. */
  allModels(): ConfiguredModel[] {
    return [...this.models.values()];
  }

  allNodes(): NodeSpec[] {
    return [...this.nodes.values()];
  }

  /** Adds one workflow's requirements; problems are appended, each naming `where`. */
  add(name: string, origin: string, needs: WorkflowRequirements, problems: string[]): WorkflowRecord {
    const where = `${origin} (${name})`;
    const notes: string[] = [];
    const ids = new Set<string>();
    for (const entry of needs.models) {
      const mapped = modelSpecOf(entry, this.endpoints, where);
      problems.push(...mapped.problems);
      notes.push(...mapped.notes);
      if (mapped.spec) ids.add(this.merge({ origin: `workflow ${name} ${entry.node}`, spec: mapped.spec }, where, problems, notes));
    }
    const nodeNames = new Set<string>();
    for (const pack of needs.packs) {
      const mapped = nodeSpecOf(pack, this.endpoints.github, where);
      problems.push(...mapped.problems);
      notes.push(...mapped.notes);
      if (mapped.spec) nodeNames.add(this.mergeNode(mapped.spec, notes));
    }
    const record: WorkflowRecord = {
      name,
      origin,
      format: needs.format,
      models: [...ids],
      nodes: [...nodeNames],
      files: needs.files,
      unknownTypes: needs.unknownTypes,
      stamped: needs.stamped,
      notes,
    };
    this.records.push(record);
    return record;
  }

  private addModel(model: ConfiguredModel): string {
    const id = modelId(model.spec);
    if (!this.models.has(id)) this.models.set(id, model);
    const file = staticFile(model.spec);
    if (file && !this.byFile.has(file)) this.byFile.set(file, id);
    return id;
  }

  private merge(model: ConfiguredModel, where: string, problems: string[], notes: string[]): string {
    const file = staticFile(model.spec);
    const own = modelId(model.spec);
    const id = this.models.has(own) ? own : ((file ? this.byFile.get(file) : undefined) ?? this.repoCovering(model.spec));
    const existing = id ? this.models.get(id) : undefined;
    if (!existing || !id) return this.addModel(model);
    if (model.origin !== existing.origin && !existing.origin.startsWith('workflow ')) notes.push(`${file ?? id} comes from ${existing.origin}`);
    const wholeRepo = existing.spec.source === 'huggingface' && !existing.spec.file;
    const a = existing.spec.sha256;
    const b = wholeRepo ? undefined : model.spec.sha256;
    if (a && b && a !== b) problems.push(`${where}: ${model.origin.replace(/^workflow \S+ /, '')} pins sha256 ${b} for ${file ?? id}, but ${existing.origin} pins ${a}`);
    else if (b && !a) this.models.set(id, { ...existing, spec: { ...existing.spec, sha256: b } as ModelSpec });
    return id;
  }

  /** A whole-repository model already asked for that brings this file: same repo, revision and folder, a path its include matches. */
  private repoCovering(spec: ModelSpec): string | undefined {
    if (spec.source !== 'huggingface' || !spec.file || !spec.category || (spec.filename && spec.filename !== baseName(spec.file))) return undefined;
    const file = spec.file;
    for (const [id, { spec: repo }] of this.models) {
      if (repo.source !== 'huggingface' || repo.file || repo.filename || repo.repo !== spec.repo) continue;
      if ((repo.revision ?? 'main') !== (spec.revision ?? 'main') || !repo.category) continue;
      if (canonicalFolder(repo.category) !== canonicalFolder(spec.category)) continue;
      if ((repo.include ?? HF_DEFAULT_INCLUDE).some((glob) => globToRegExp(glob).test(file))) return id;
    }
    return undefined;
  }

  private mergeNode(spec: NodeSpec, notes: string[]): string {
    const existing = this.nodes.get(spec.name);
    if (!existing || sameNode(existing, spec)) {
      this.nodes.set(spec.name, existing ?? spec);
      return spec.name;
    }
    const newer = !this.configuredNodes.has(spec.name) && isRegistryNode(existing) && isRegistryNode(spec) && newerVersion(spec.version, existing.version);
    const kept = newer ? spec : existing;
    const dropped = newer ? existing : spec;
    if (newer) this.nodes.set(spec.name, spec);
    notes.push(`custom_nodes/${spec.name}: ${describeNode(kept)} is installed, not ${describeNode(dropped)}`);
    return spec.name;
  }
}

/** Where a model lands when that is known without asking its source: `folder/name`. */
function staticFile(spec: ModelSpec): string | undefined {
  const name = expectedFileName(spec);
  return spec.category && name ? `${canonicalFolder(spec.category)}/${name}` : undefined;
}

function sameNode(a: NodeSpec, b: NodeSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function newerVersion(a: string | undefined, b: string | undefined): boolean {
  // A pinned release wins over "the newest", whatever that is today.
  if (!a || !b) return a !== undefined;
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! > pb[i]!;
  return false;
}
