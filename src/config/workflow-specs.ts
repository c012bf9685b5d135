import { baseName } from '../workflows/loaders.js';
import type { RequiredModel, RequiredPack } from '../workflows/requirements.js';
import { normalizeFolder } from './folders.js';
import { formatIssues } from './manifest.js';
import { ModelSpec, parseShortSpec, type SpecEndpoints } from './model-spec.js';
import { parseNodeSpec, type NodeSpec } from './nodes.js';

/** A spec read from a workflow, or why none could be, or something the user should know. */
export interface Mapped<T> {
  spec?: T;
  problems: string[];
  notes: string[];
}

/**
 * A node's `properties.models[]` entry as a model spec: Hugging Face resolve and blob URLs → the
 * Hugging Face source (so its sha256 comes from the Hub), CivitAI download/page URLs and AIR URNs
 * → CivitAI, Google Drive links → gdrive, anything else → url. `directory` is the folder, `name`
 * the file name the loader expects, and a sha256 `hash` pins the bytes.
 */
export function modelSpecOf(entry: RequiredModel, endpoints: SpecEndpoints, where: string): Mapped<ModelSpec> {
  const notes: string[] = [];
  if (!entry.url) return { problems: [], notes: [`${entry.node}: model ${entry.name} has no url`] };
  const raw = parseShortSpec(entry.url, endpoints);
  if (raw.source === 'unknown' || (raw.source === 'huggingface' && !/^https?:\/\//i.test(entry.url))) {
    return { problems: [`${where}: ${entry.node} model ${entry.name}: url "${entry.url}" is not an http(s) URL or a CivitAI AIR`], notes };
  }
  const category = entry.directory ? normalizeFolder(entry.directory) : undefined;
  if (entry.directory && !category) {
    return { problems: [`${where}: ${entry.node} model ${entry.name}: directory "${entry.directory}" is not a ComfyUI model folder`], notes };
  }
  const name = baseName(entry.name);
  if (name !== entry.name) notes.push(`${entry.node}: model ${entry.name} is saved as ${name} at the top of its folder`);
  const pin = sha256Of(entry);
  if (entry.hash && !pin) notes.push(`${entry.node}: model ${entry.name}: hash of type ${entry.hashType ?? 'unknown'} is not checked (only sha256 is)`);
  // "main" is the default revision: leaving it out lets the same file from the manifest be one download.
  if (raw.source === 'huggingface' && raw.revision === 'main') delete raw.revision;
  const sourceName = raw.source === 'huggingface' ? baseName(String(raw.file ?? '')) : raw.source === 'url' ? urlFileName(String(raw.url)) : undefined;
  const parsed = ModelSpec.safeParse({
    ...raw,
    ...(category ? { category } : {}),
    ...(name !== sourceName ? { filename: name } : {}),
    ...(pin ? { sha256: pin } : {}),
  });
  if (!parsed.success) return { problems: formatIssues(`${where}: ${entry.node} model ${entry.name}`, parsed.error), notes };
  return { spec: parsed.data, problems: [], notes };
}

/** The hash of an entry when it is a sha256 (hash_type "SHA256", or absent with 64 hex digits). */
function sha256Of(entry: RequiredModel): string | undefined {
  if (!entry.hash || !/^[0-9a-f]{64}$/i.test(entry.hash)) return undefined;
  return !entry.hashType || /^sha-?256$/i.test(entry.hashType) ? entry.hash.toLowerCase() : undefined;
}

function urlFileName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  } catch {
    return '';
  }
}

const SEMVER = /^\d+\.\d+\.\d+$/;
const COMMIT = /^[0-9a-f]{7,64}$/i;
const REPO = /^[\w.-]+\/[\w.-]+$/;

/**
 * A node's pack as a node spec. `cnr_id` with a released `ver` → the Comfy Registry at that
 * version; `aux_id` (`owner/repo` on GitHub) with `ver` (a commit) → git at that commit, also when
 * a `cnr_id` sits beside a commit (a nightly install). A pack without `ver` installs unpinned,
 * and says so.
 */
export function nodeSpecOf(pack: RequiredPack, githubBaseUrl: string, where: string): Mapped<NodeSpec> {
  const { cnrId, auxId, ver } = pack;
  const notes: string[] = [];
  let raw: Record<string, unknown>;
  if (cnrId && (!ver || SEMVER.test(ver) || !auxId)) {
    if (!ver) notes.push(`${pack.node}: ${cnrId} has no ver: the registry's newest release is installed`);
    else if (!SEMVER.test(ver)) notes.push(`${pack.node}: ver "${ver}" of ${cnrId} is not a registry release: the newest release is installed`);
    raw = { registry: cnrId, ...(ver && SEMVER.test(ver) ? { version: ver } : {}) };
  } else if (auxId && REPO.test(auxId)) {
    if (!ver) notes.push(`${pack.node}: ${auxId} has no ver: its default branch is installed`);
    else if (!COMMIT.test(ver)) notes.push(`${pack.node}: ver "${ver}" of ${auxId} is taken as a git tag or branch`);
    const repo = auxId.split('/')[1]!.replace(/\.git$/, '');
    raw = { name: repo, url: `${githubBaseUrl}/${auxId.replace(/\.git$/, '')}.git`, ...(ver ? { ref: ver } : {}) };
  } else {
    return { problems: [`${where}: ${pack.node}: aux_id "${auxId ?? ''}" is not a GitHub owner/repo`], notes };
  }
  const parsed = parseNodeSpec(raw);
  if (!parsed.success) return { problems: formatIssues(`${where}: ${pack.node} (${cnrId ?? auxId})`, parsed.error), notes };
  return { spec: parsed.data, problems: [], notes };
}
