import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { RegistryNodeSpec } from '../config/nodes.js';
import { UserError } from '../lib/errors.js';
import { pathExists as exists, writeFileAtomically } from '../lib/fs.js';
import { fetchFollowing, httpError } from '../lib/http.js';
import type { InstallNodeOptions } from './install.js';
import { installRequirements } from './requirements.js';
import { extractZip } from './unzip.js';

/** A node pack's zip is source code: anything near these sizes is not one. */
const MAX_ZIP_BYTES = 256 * 2 ** 20;
const ZIP_LIMITS = { maxEntries: 20_000, maxBytes: 1024 * 2 ** 20 };

/** Kept in the node's folder: what was installed, and which files came from the archive. */
const MARKER = '.phoenix-registry.json';

const Marker = z.object({ registry: z.string(), version: z.string(), sha256: z.string(), files: z.array(z.string()) });
type Marker = z.output<typeof Marker>;

const NodeVersion = z.object({
  version: z.string(),
  downloadUrl: z.string(),
  deprecated: z.boolean().nullish(),
  status: z.string().nullish(),
});

export interface RegistryRelease {
  version: string;
  downloadUrl: string;
  deprecated: boolean;
}

export interface RegistryInstallOptions extends InstallNodeOptions<RegistryNodeSpec> {
  /** COMFY_REGISTRY_URL. */
  registryUrl: string;
}

export interface InstalledRegistryNode {
  path: string;
  version: string;
  /** SHA-256 of the zip that was unpacked. */
  sha256: string;
}

/**
 * The release of a registry node to install: `GET /nodes/{id}/install?version=…` answers its
 * `downloadUrl`. The answer is checked to be the version asked for: a registry that answers
 * another release for a version it lacks must not be taken at its word.
 */
export async function resolveRegistryNode(node: RegistryNodeSpec, registryUrl: string, signal?: AbortSignal): Promise<RegistryRelease> {
  const id = encodeURIComponent(node.registry);
  const query = node.version ? `?version=${encodeURIComponent(node.version)}` : '';
  const { response } = await fetchFollowing(`${registryUrl}/nodes/${id}/install${query}`, {
    headers: { accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
  if (response.status === 404) {
    await response.body?.cancel();
    throw await notFound(node, registryUrl, signal);
  }
  if (response.status === 400) {
    await response.body?.cancel();
    throw new UserError(`Comfy Registry refused ${node.registry}@${node.version ?? 'latest'}: a version is three numbers like 1.2.3`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw httpError(`Comfy Registry node ${node.registry}`, response);
  }
  const parsed = NodeVersion.safeParse(await response.json().catch(() => undefined));
  if (!parsed.success) throw new UserError(`Comfy Registry answered ${node.registry} with an unexpected body`);
  const release = parsed.data;
  if (node.version && release.version !== node.version) {
    throw new UserError(`Comfy Registry has no version ${node.version} of ${node.registry} (it answered ${release.version}): pin a version it lists at ${pageOf(node.registry)}`);
  }
  if (release.status && /banned|deleted/i.test(release.status)) {
    throw new UserError(`Comfy Registry withdrew ${node.registry}@${release.version} (${release.status}): pin another version`);
  }
  if (!/^https?:\/\//i.test(release.downloadUrl)) throw new UserError(`Comfy Registry gave ${node.registry} a download URL that is not http(s)`);
  return { version: release.version, downloadUrl: release.downloadUrl, deprecated: release.deprecated ?? false };
}

/** Tells an unknown id from a version the registry does not have, naming the newest one. */
async function notFound(node: RegistryNodeSpec, registryUrl: string, signal?: AbortSignal): Promise<Error> {
  const { response } = await fetchFollowing(`${registryUrl}/nodes/${encodeURIComponent(node.registry)}`, {
    headers: { accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
  const body = response.ok ? ((await response.json().catch(() => ({}))) as { latest_version?: { version?: string } }) : undefined;
  if (!response.ok) await response.body?.cancel();
  if (!body) {
    return new UserError(`Comfy Registry has no node "${node.registry}": check the id (the workflow's cnr_id) at https://registry.comfy.org`);
  }
  const newest = body.latest_version?.version;
  return new UserError(
    `Comfy Registry has no version ${node.version} of ${node.registry}${newest ? ` (the newest is ${newest})` : ''}: pin a version it lists at ${pageOf(node.registry)}`,
  );
}

/**
 * Installs a registry node: downloads its zip (checked against `sha256` when pinned), unpacks it
 * beside custom_nodes/ under a name ComfyUI skips (`….disabled`), then moves it into
 * custom_nodes/<id>: files of the previous release are replaced, files the node wrote itself
 * (settings, downloaded weights) stay. Then its requirements and install.py, as for git nodes.
 * A folder already at that version is not downloaded again.
 */
export async function installRegistryNode(options: RegistryInstallOptions): Promise<InstalledRegistryNode> {
  const { node } = options;
  const customNodes = path.join(options.comfyuiDir, 'custom_nodes');
  const dir = path.join(customNodes, node.name);
  const label = `custom node ${node.name}`;
  await mkdir(customNodes, { recursive: true });
  const previous = await readMarker(dir);
  if (!previous && (await exists(dir))) {
    throw new UserError(`${label}: ${dir} exists but was not installed from the Comfy Registry; remove it so the registry release can be installed`);
  }

  let marker: Marker;
  if (previous && node.version === previous.version && (!node.sha256 || node.sha256 === previous.sha256) && (await allPresent(dir, previous.files))) {
    options.onOutput?.(`${node.registry}@${previous.version} is already in place`);
    marker = previous;
  } else {
    const release = await resolveRegistryNode(node, options.registryUrl, options.signal);
    if (release.deprecated) options.onOutput?.(`warning: Comfy Registry marks ${node.registry}@${release.version} deprecated`);
    const stamp = randomBytes(4).toString('hex');
    const zip = path.join(customNodes, `${node.name}.${stamp}.phoenix-download`);
    const staging = path.join(customNodes, `${node.name}.${stamp}.phoenix-staging.disabled`);
    try {
      options.onOutput?.(`downloading ${node.registry}@${release.version} from ${new URL(release.downloadUrl).origin}`);
      const sha256 = await download(release.downloadUrl, zip, label, options.signal);
      if (node.sha256 && node.sha256 !== sha256) {
        throw new UserError(`${label}: the registry's zip has sha256 ${sha256}, expected ${node.sha256}: not installed`);
      }
      const files = await extractZip(zip, staging, ZIP_LIMITS, `${label}: the registry's zip`);
      marker = { registry: node.registry, version: release.version, sha256, files };
      await moveInto(staging, dir, previous, files);
      await writeFileAtomically(path.join(dir, MARKER), JSON.stringify(marker, null, 1));
    } finally {
      await rm(zip, { force: true });
      await rm(staging, { recursive: true, force: true });
    }
  }
  await installRequirements(dir, { ...options, label });
  return { path: dir, version: marker.version, sha256: marker.sha256 };
}

async function download(url: string, file: string, label: string, signal?: AbortSignal): Promise<string> {
  const { response } = await fetchFollowing(url, signal ? { signal } : {});
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw httpError(`${label}: download ${new URL(url).origin}${new URL(url).pathname}`, response);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      if (bytes > MAX_ZIP_BYTES) return done(new UserError(`${label}: the registry's zip is larger than ${MAX_ZIP_BYTES} bytes`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), meter, createWriteStream(file, { flags: 'wx' }));
  return hash.digest('hex');
}

/** A new folder is renamed into place; an update drops the previous release's files and moves the new ones over. */
async function moveInto(staging: string, dir: string, previous: Marker | undefined, files: readonly string[]): Promise<void> {
  if (!previous) {
    await rename(staging, dir);
    return;
  }
  for (const file of previous.files) await rm(path.join(dir, file), { force: true });
  for (const file of files) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await rename(path.join(staging, file), path.join(dir, file));
  }
}

async function readMarker(dir: string): Promise<Marker | undefined> {
  try {
    const parsed = Marker.safeParse(JSON.parse(await readFile(path.join(dir, MARKER), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function allPresent(dir: string, files: readonly string[]): Promise<boolean> {
  for (const f of files) if (!(await exists(path.join(dir, f)))) return false;
  return true;
}

function pageOf(id: string): string {
  return `https://registry.comfy.org/nodes/${encodeURIComponent(id)}`;
}
