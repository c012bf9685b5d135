import { z } from 'zod';
import { redactUrl } from '../lib/url-credentials.js';
import { HttpUrl, PlainName, Sha256 } from './model-spec.js';

/** A custom node from git: `<name>` is its folder under custom_nodes/. */
export const GitNodeSpec = z.strictObject({
  name: PlainName,
  url: HttpUrl.refine((u) => !u.startsWith('-'), 'must not start with "-"'),
  ref: z
    .string()
    .min(1)
    .max(255, 'must be at most 255 characters')
    .regex(/^[^-\s][^\s]*$/, 'must be a tag, branch or commit (no spaces, not starting with "-")')
    .optional(),
});
export type GitNodeSpec = z.output<typeof GitNodeSpec>;

/**
 * A custom node from the Comfy Registry: its zip at `version` (the newest release when omitted),
 * unpacked into custom_nodes/<registry id>. `sha256` pins the zip's bytes.
 */
export const RegistryNodeSpec = z.strictObject({
  name: PlainName,
  registry: z.string().max(100, 'must be at most 100 characters').regex(/^[A-Za-z0-9][\w.-]*$/, 'must be a Comfy Registry node id (e.g. comfyui-kjnodes)'),
  version: z.string().regex(/^\d+\.\d+\.\d+$/, 'must be a released version like 1.2.3 (as registry.comfy.org lists it)').optional(),
  sha256: Sha256.optional(),
});
export type RegistryNodeSpec = z.output<typeof RegistryNodeSpec>;

/** A custom node as stored in job data (validated input only ever reaches it through parseNodeSpec). */
export const NodeSpec = z.union([GitNodeSpec, RegistryNodeSpec]);
export type NodeSpec = GitNodeSpec | RegistryNodeSpec;

export function isRegistryNode(node: NodeSpec): node is RegistryNodeSpec {
  return 'registry' in node;
}

/**
 * Validates a node as a user gives it: with `registry` it is a registry node (its folder is the
 * registry id), otherwise a git node. Each kind reports its own fields' problems.
 */
export function parseNodeSpec(raw: unknown): ReturnType<typeof GitNodeSpec.safeParse> | ReturnType<typeof RegistryNodeSpec.safeParse> {
  if (raw !== null && typeof raw === 'object' && 'registry' in raw) {
    const { registry } = raw as { registry: unknown };
    return RegistryNodeSpec.safeParse({ ...raw, name: typeof registry === 'string' ? registry : '' });
  }
  return GitNodeSpec.safeParse(raw);
}

/** `id[@version]` as COMFY_NODES lists registry nodes. */
export function splitRegistryNode(text: string): { registry: string; version?: string } {
  const [registry = '', version] = text.trim().split('@');
  return version ? { registry, version } : { registry };
}

/** How logs and /status show where a node comes from. */
export function describeNode(node: NodeSpec): string {
  return isRegistryNode(node) ? `registry ${node.registry}@${node.version ?? 'latest'}` : `${node.url}${node.ref ? `@${node.ref}` : ''}`;
}

/** The folder name ComfyUI will see: the repository's last path segment without `.git`. */
export function nodeNameFromUrl(url: string): string {
  try {
    const segments = new URL(url).pathname.split('/').filter(Boolean);
    return (segments.pop() ?? '').replace(/\.git$/, '');
  } catch {
    return '';
  }
}

/** Splits `https://host/owner/repo.git@ref` into url and ref; an `@` in the user-info is not a ref. */
export function splitNodeUrl(text: string): { url: string; ref?: string } {
  const t = text.trim();
  const pathStart = t.indexOf('/', t.indexOf('://') + 3);
  const at = t.lastIndexOf('@');
  if (pathStart < 0 || at < pathStart) return { url: t };
  return { url: t.slice(0, at), ref: t.slice(at + 1) };
}

/** The node as stored in job data: credentials inside its URL shown as `***` (the worker finds them in its configuration). */
export function toStoredNode<N extends NodeSpec>(node: N): N {
  return 'url' in node ? { ...node, url: redactUrl(node.url) } : node;
}
