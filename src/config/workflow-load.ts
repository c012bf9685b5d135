import path from 'node:path';
import { driveFileId, isGoogleDriveLink, type DriveEndpoints } from '../lib/gdrive.js';
import { parseWorkflow, WorkflowError } from '../workflows/graph.js';
import { workflowRequirements, type WorkflowRequirements } from '../workflows/requirements.js';
import { readManifestText } from './manifest.js';
import { modelId, type ConfiguredModel, type SpecEndpoints } from './model-spec.js';
import type { NodeSpec } from './nodes.js';
import { WORKFLOW_NAME, WORKFLOW_NAME_RULE, WorkflowCatalog, type WorkflowRecord } from './workflows.js';

/** A workflow file to read: a local path, an http(s) URL or a Google Drive link. */
export interface WorkflowSource {
  name: string;
  /** How messages name it: PROVISION_WORKFLOWS[0], manifest workflows.x, --workflow. */
  origin: string;
  location: string;
}

/**
 * Workflows listed by location (PROVISION_WORKFLOWS, --workflow): each is named after its file,
 * without `.json` (a Google Drive link, whose URL ends in /view, after its file id); a name taken
 * twice gets a number.
 */
export function sourcesFromLocations(
  locations: readonly string[],
  origin: (i: number) => string,
  taken: Set<string>,
  drive: DriveEndpoints,
): WorkflowSource[] {
  return locations.map((location, i) => {
    const base = isGoogleDriveLink(location, drive) ? driveName(location) : fileStem(location);
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
    taken.add(name);
    return { name, origin: origin(i), location };
  });
}

function driveName(link: string): string {
  try {
    return `drive-${driveFileId(link)}`.slice(0, 100);
  } catch {
    return 'workflow';
  }
}

function fileStem(location: string): string {
  let last = location;
  try {
    last = decodeURIComponent(new URL(location).pathname);
  } catch {
    /* a local path */
  }
  const stem = path.basename(last).replace(/\.json$/i, '').replace(/[^\w .-]+/g, '-').replace(/^[^\w]+/, '').slice(0, 100);
  return WORKFLOW_NAME.test(stem) ? stem : 'workflow';
}

/** Reads and parses one workflow; a file that cannot be read or is no workflow is a problem. */
export async function readWorkflowSource(
  source: WorkflowSource,
  fetchText: (url: string) => Promise<string>,
  problems: string[],
): Promise<WorkflowRequirements | undefined> {
  const where = `${source.origin} (${source.location})`;
  if (!WORKFLOW_NAME.test(source.name)) {
    problems.push(`${source.origin}: workflow name "${source.name}" ${WORKFLOW_NAME_RULE}`);
    return undefined;
  }
  let text: string;
  try {
    text = await readManifestText(source.location, fetchText);
  } catch (err) {
    problems.push(`${where}: cannot read the workflow: ${(err as Error).message}`);
    return undefined;
  }
  return requirementsOf(text, where, problems);
}

/** A workflow's requirements from its JSON text, or a problem saying why it is not one. */
export function requirementsOf(text: string, where: string, problems: string[]): WorkflowRequirements | undefined {
  try {
    return workflowRequirements(parseWorkflow(text));
  } catch (err) {
    if (!(err instanceof WorkflowError)) throw err;
    problems.push(`${where}: ${err.message}`);
    return undefined;
  }
}

/** A workflow added while the pod runs, with the models and nodes it needs (configured ones included). */
export interface RuntimeWorkflow {
  record: WorkflowRecord;
  models: ConfiguredModel[];
  nodes: NodeSpec[];
}

/**
 * Reads a workflow given at runtime (POST /api/workflows) against what the pod is configured
 * with, so a file the configuration already provides is the same model. Returns the problems
 * instead when it is not a workflow or names something invalid.
 */
export function runtimeWorkflow(
  text: string,
  name: string,
  configured: { endpoints: SpecEndpoints & { github: string }; models: readonly ConfiguredModel[]; nodes: readonly NodeSpec[] },
): RuntimeWorkflow | { problems: string[] } {
  const problems: string[] = [];
  if (!WORKFLOW_NAME.test(name)) return { problems: [`name: "${name}" ${WORKFLOW_NAME_RULE}`] };
  const needs = requirementsOf(text, 'body', problems);
  if (!needs) return { problems };
  const catalog = new WorkflowCatalog(configured.endpoints, configured.models, configured.nodes);
  const record = catalog.add(name, 'api', needs, problems);
  if (problems.length > 0) return { problems };
  const models = new Map(catalog.allModels().map((m) => [modelId(m.spec), m]));
  const nodes = new Map(catalog.allNodes().map((n) => [n.name, n]));
  return {
    record,
    models: record.models.map((id) => models.get(id)!),
    nodes: record.nodes.map((n) => nodes.get(n)!),
  };
}
