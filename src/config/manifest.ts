import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { type DriveEndpoints, fetchGoogleDriveText, isGoogleDriveLink } from '../lib/gdrive.js';
import { fetchFollowing, httpError } from '../lib/http.js';
import { isPlainObject } from '../lib/objects.js';
import { normalizeFolder } from './folders.js';
import { ModelSpec, parseShortSpec, type SpecEndpoints } from './model-spec.js';
import { parseNodeSpec, type NodeSpec } from './nodes.js';

/** A model from the manifest, remembered with the key a user will recognise in errors. */
export interface ManifestModel {
  key: string;
  spec: ModelSpec;
}

/** A workflow the manifest asks for: `[workflows.<name>] url = "…"` or `path = "…"`. */
export interface ManifestWorkflow {
  name: string;
  key: string;
  location: string;
}

export interface Manifest {
  models: ManifestModel[];
  nodes: NodeSpec[];
  workflows: ManifestWorkflow[];
}

const SECTIONS = ['models', 'nodes', 'workflows'];

/**
 * Parses manifest TOML. Problems are appended to `problems`, each prefixed with its manifest key.
 * `location` is where the manifest was read from: workflow paths are relative to it.
 */
export function parseManifest(text: string, endpoints: SpecEndpoints, problems: string[], location?: string): Manifest {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    problems.push(`manifest: not valid TOML: ${(err as Error).message.split('\n')[0]}`);
    return { models: [], nodes: [], workflows: [] };
  }
  const models: ManifestModel[] = [];
  const nodes: NodeSpec[] = [];

  for (const key of Object.keys(doc)) {
    if (!SECTIONS.includes(key)) problems.push(`manifest ${key}: unknown section (expected [models.…], [nodes.…] or [workflows.…])`);
  }

  for (const [folderKey, entries] of Object.entries(asTable(doc.models))) {
    const folder = normalizeFolder(folderKey);
    if (!folder) {
      problems.push(`manifest models.${folderKey}: not a ComfyUI model folder or alias (e.g. checkpoints, loras, vae)`);
      continue;
    }
    if (!isPlainObject(entries)) {
      problems.push(`manifest models.${folderKey}: must be a table of models`);
      continue;
    }
    for (const [name, entry] of Object.entries(entries)) {
      const key = `models.${folderKey}.${name}`;
      const raw =
        typeof entry === 'string'
          ? { ...parseShortSpec(entry, endpoints) }
          : isPlainObject(entry)
            ? { ...entry }
            : undefined;
      if (!raw) {
        problems.push(`manifest ${key}: must be a URL string or a table`);
        continue;
      }
      const parsed = ModelSpec.safeParse({ category: folder, ...raw });
      if (!parsed.success) {
        problems.push(...formatIssues(`manifest ${key}`, parsed.error));
        continue;
      }
      models.push({ key, spec: parsed.data });
    }
  }

  for (const [name, entry] of Object.entries(asTable(doc.nodes))) {
    const key = `nodes.${name}`;
    const raw = typeof entry === 'string' ? { url: entry } : isPlainObject(entry) ? entry : undefined;
    if (!raw) {
      problems.push(`manifest ${key}: must be a URL string, a table with url and ref, or a table with registry and version`);
      continue;
    }
    const parsed = parseNodeSpec({ name, ...raw });
    if (!parsed.success) problems.push(...formatIssues(`manifest ${key}`, parsed.error));
    else nodes.push(parsed.data);
  }
  return { models, nodes, workflows: manifestWorkflows(doc.workflows, location, problems) };
}

function manifestWorkflows(section: unknown, location: string | undefined, problems: string[]): ManifestWorkflow[] {
  const out: ManifestWorkflow[] = [];
  for (const [name, entry] of Object.entries(asTable(section))) {
    const key = `workflows.${name}`;
    const table = isPlainObject(entry) ? entry : { url: entry };
    const unknown = Object.keys(table).filter((k) => k !== 'url' && k !== 'path');
    const given = [table.url, table.path].filter((v) => v !== undefined);
    if (unknown.length > 0 || given.length !== 1 || typeof given[0] !== 'string' || given[0].trim() === '') {
      problems.push(`manifest ${key}: give the workflow file as url = "https://…" or path = "…" (one of them)`);
      continue;
    }
    out.push({ name, key, location: relativeTo(given[0].trim(), location) });
  }
  return out;
}

/** A relative workflow path is read beside the manifest (a URL manifest: beside it on its server). */
function relativeTo(target: string, manifest: string | undefined): string {
  if (/^https?:\/\//i.test(target) || path.isAbsolute(target) || !manifest) return target;
  if (/^https?:\/\//i.test(manifest)) return new URL(target, manifest).toString();
  return path.resolve(path.dirname(manifest), target);
}

/** Reads PROVISION_URL: a local path or an http(s) URL (Google Drive links go through `fetchText`). */
export async function readManifestText(
  location: string,
  fetchText: (url: string) => Promise<string>,
): Promise<string> {
  if (/^https?:\/\//i.test(location)) return fetchText(location);
  return readFile(location, 'utf8');
}

/**
 * A `fetchText` for loadConfig: Google Drive share links through the confirm flow, any other
 * http(s) URL with a plain GET.
 */
export function createManifestFetcher(endpoints: DriveEndpoints): (url: string) => Promise<string> {
  return async (url) => {
    if (isGoogleDriveLink(url, endpoints)) return fetchGoogleDriveText(url, endpoints, AbortSignal.timeout(60_000));
    const { response } = await fetchFollowing(url, { signal: AbortSignal.timeout(60_000) });
    if (!response.ok) {
      await response.body?.cancel();
      throw httpError(`GET ${new URL(url).origin}${new URL(url).pathname}`, response);
    }
    return response.text();
  };
}

export function formatIssues(prefix: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return `${prefix}${path ? `.${path}` : ''}: ${issue.message}`;
  });
}

function asTable(v: unknown): Record<string, unknown> {
  return isPlainObject(v) ? v : {};
}

