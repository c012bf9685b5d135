import { z } from 'zod';
import { HttpUrl, PlainName } from './model-spec.js';

/** A custom node as asked for: `<name>` is its folder under custom_nodes/. */
export const NodeSpec = z.strictObject({
  name: PlainName,
  url: HttpUrl.refine((u) => !u.startsWith('-'), 'must not start with "-"'),
  ref: z
    .string()
    .min(1)
    .max(255, 'must be at most 255 characters')
    .regex(/^[^-\s][^\s]*$/, 'must be a tag, branch or commit (no spaces, not starting with "-")')
    .optional(),
});
export type NodeSpec = z.output<typeof NodeSpec>;

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
