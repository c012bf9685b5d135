import { z } from 'zod';
import { HF_DEFAULT_INCLUDE, type StoredModelSpec } from '../config/model-spec.js';
import type { DownloadRequest } from '../download/types.js';
import { TransientError, UserError } from '../lib/errors.js';
import { globToRegExp } from '../lib/glob.js';
import { fetchFollowing, httpError, probedSize, retryAfterMs } from '../lib/http.js';
import { sanitizeFilename } from '../lib/names.js';
import type { ModelSourceClient, ResolvedFile, SourceContext } from './types.js';

type HuggingfaceSpec = Extract<StoredModelSpec, { source: 'huggingface' }>;

const DEFAULT_RETRY_AFTER_MS = 30_000;

const TreeEntry = z.object({
  type: z.string(),
  path: z.string(),
  size: z.number().optional(),
  lfs: z.object({ oid: z.string(), size: z.number() }).nullish(),
});
type TreeEntry = z.output<typeof TreeEntry>;

interface Repo {
  spec: HuggingfaceSpec;
  revision: string;
  endpoint: string;
  headers: Record<string, string>;
  origin: string;
}

/**
 * Hugging Face Hub repositories (models, `datasets/…`, `spaces/…`): one file through a ranged
 * GET on `/resolve/` (size and LFS sha256 from X-Linked-Size / X-Linked-Etag), a whole repository
 * through the paginated tree API. HF_TOKEN goes as Bearer to HF_ENDPOINT only, never to the CDN.
 */
export const huggingfaceSource: ModelSourceClient<HuggingfaceSpec> = {
  source: 'huggingface',
  async resolve(spec, ctx): Promise<ResolvedFile[]> {
    const endpoint = ctx.config.endpoints.hf;
    const repo: Repo = {
      spec,
      revision: spec.revision ?? 'main',
      endpoint,
      headers: ctx.config.tokens.hf ? { authorization: `Bearer ${ctx.config.tokens.hf}` } : {},
      origin: new URL(endpoint).origin,
    };
    return spec.file ? [await resolveFile(repo, spec.file, ctx)] : resolveRepository(repo, ctx);
  },
};

async function resolveFile(repo: Repo, path: string, ctx: SourceContext): Promise<ResolvedFile> {
  const { response, redirects } = await fetchFollowing(resolveUrl(repo, repo.revision, path), {
    headers: { range: 'bytes=0-0' },
    secretHeaders: repo.headers,
    secretOrigin: repo.origin,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  await response.body?.cancel();
  if (response.status !== 200 && response.status !== 206) {
    throw hubError(response, repo, path);
  }
  // The 302 to the CDN carries the LFS facts; its own Content-Length is the redirect's body.
  const hops = [...redirects, response];
  const linked = hops.find((r) => r.headers.has('x-linked-etag') || r.headers.has('x-linked-size'));
  const commit = hops.map((r) => r.headers.get('x-repo-commit')).find((c) => c && /^[0-9a-f]{40}$/.test(c));
  const etag = linked?.headers.get('x-linked-etag')?.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
  const linkedSize = linked?.headers.get('x-linked-size');
  const bytes = linkedSize ? Number(linkedSize) : probedSize(response);
  const sha256 = repo.spec.sha256 ?? (etag && /^[0-9a-f]{64}$/.test(etag) ? etag : undefined);
  return {
    name: nameOf(repo.spec.filename ?? path),
    ...(bytes !== undefined ? { bytes } : {}),
    ...(sha256 ? { sha256 } : {}),
    // Pinned to the commit that was resolved, so the bytes match the published checksum.
    request: downloadRequest(repo, commit ?? repo.revision, path),
  };
}

async function resolveRepository(repo: Repo, ctx: SourceContext): Promise<ResolvedFile[]> {
  const include = repo.spec.include ?? HF_DEFAULT_INCLUDE;
  const matchers = include.map(globToRegExp);
  const entries = (await listTree(repo, ctx)).filter((e) => e.type === 'file' && matchers.some((m) => m.test(e.path)));
  if (entries.length === 0) {
    throw new UserError(
      `Hugging Face repository ${repo.spec.repo} has no file matching ${include.map((g) => `"${g}"`).join(', ')} at revision "${repo.revision}": set "include" or "file"`,
    );
  }
  if (repo.spec.filename && entries.length > 1) {
    throw new UserError(`"filename" renames one file, but ${repo.spec.repo} matches ${entries.length} files: name a "file" instead`);
  }
  // Gated repositories list their files to anyone; one ranged GET surfaces the licence error now.
  await resolveFile(repo, entries[0]!.path, ctx);
  const names = flattenedNames(entries.map((e) => e.path));
  return entries.map((entry, i) => {
    const sha256 = entries.length === 1 && repo.spec.sha256 ? repo.spec.sha256 : entry.lfs?.oid.toLowerCase();
    const bytes = entry.lfs?.size ?? entry.size;
    return {
      name: repo.spec.filename ?? names[i]!,
      ...(bytes !== undefined ? { bytes } : {}),
      ...(sha256 && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
      request: downloadRequest(repo, repo.revision, entry.path),
    };
  });
}

/** Every tree entry, following `Link: <…>; rel="next"` pages. */
async function listTree(repo: Repo, ctx: SourceContext): Promise<TreeEntry[]> {
  const { kind, id } = splitRepoId(repo.spec.repo);
  let next: string | undefined = `${repo.endpoint}/api/${kind}/${id}/tree/${encodeURIComponent(repo.revision)}?recursive=true`;
  const entries: TreeEntry[] = [];
  for (let page = 0; next; page++) {
    if (page >= 1000) throw new TransientError(`Hugging Face tree of ${repo.spec.repo} did not end after 1000 pages`);
    const { response } = await fetchFollowing(next, {
      headers: { accept: 'application/json' },
      secretHeaders: repo.headers,
      secretOrigin: repo.origin,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw hubError(response, repo, undefined);
    }
    const parsed = z.array(TreeEntry).safeParse(await response.json());
    if (!parsed.success) throw new TransientError(`Hugging Face answered the tree of ${repo.spec.repo} with an unexpected body`);
    entries.push(...parsed.data);
    next = nextLink(response.headers.get('link'), next);
  }
  return entries;
}

function nextLink(header: string | null, base: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (m) return new URL(m[1]!, base).toString();
  }
  return undefined;
}

/** `datasets/owner/name` → kind datasets; `owner/name` → models. */
function splitRepoId(repo: string): { kind: 'models' | 'datasets' | 'spaces'; id: string; prefix: string } {
  const m = /^(datasets|spaces)\/(.+)$/.exec(repo);
  return m ? { kind: m[1] as 'datasets' | 'spaces', id: m[2]!, prefix: `${m[1]}/` } : { kind: 'models', id: repo, prefix: '' };
}

function resolveUrl(repo: Repo, revision: string, path: string): string {
  const { id, prefix } = splitRepoId(repo.spec.repo);
  const encodedPath = path.split('/').map(encodeURIComponent).join('/');
  return `${repo.endpoint}/${prefix}${id}/resolve/${encodeURIComponent(revision)}/${encodedPath}`;
}

function downloadRequest(repo: Repo, revision: string, path: string): DownloadRequest {
  return { url: resolveUrl(repo, revision, path), headers: repo.headers, headersOrigin: repo.origin };
}

function nameOf(path: string): string {
  const name = sanitizeFilename(path);
  if (!name) throw new UserError(`"${path}" does not end in a usable file name: set "filename"`);
  return name;
}

/** Base names, except that files sharing one keep their folders, joined by "_", to stay apart. */
function flattenedNames(paths: readonly string[]): string[] {
  const base = paths.map((p) => p.split('/').pop()!);
  return paths.map((p, i) => {
    const clash = base.filter((b) => b === base[i]).length > 1;
    return nameOf(clash ? p.split('/').join('_') : base[i]!);
  });
}

/** Maps the Hub's X-Error-Code to what the user has to do. */
function hubError(response: Response, repo: Repo, path: string | undefined): Error {
  const code = response.headers.get('x-error-code');
  const status = response.status;
  const page = `${repo.endpoint}/${repo.spec.repo}`;
  const hasToken = repo.headers.authorization !== undefined;
  if (code === 'GatedRepo') {
    return status === 403 && hasToken
      ? new UserError(`Hugging Face repository ${repo.spec.repo} is gated and your token has no access yet: request access at ${page}`)
      : new UserError(`Hugging Face repository ${repo.spec.repo} is gated: accept the licence at ${page} and set HF_TOKEN`);
  }
  if (code === 'RepoNotFound') {
    return new UserError(
      hasToken
        ? `Hugging Face has no repository ${repo.spec.repo} that HF_TOKEN can read: check the name, or the token's access if it is private`
        : `Hugging Face has no public repository ${repo.spec.repo}: check the name, or set HF_TOKEN if it is private`,
    );
  }
  if (code === 'RevisionNotFound') return new UserError(`Hugging Face repository ${repo.spec.repo} has no revision "${repo.revision}"`);
  if (code === 'EntryNotFound') {
    return new UserError(`Hugging Face repository ${repo.spec.repo} has no file "${path ?? ''}" at revision "${repo.revision}"`);
  }
  if (status === 429) {
    return new TransientError(`Hugging Face rate limit reached for ${repo.spec.repo}`, {
      retryAfterMs: retryAfterMs(response) ?? DEFAULT_RETRY_AFTER_MS,
    });
  }
  if (status === 401) {
    return new UserError(
      hasToken
        ? `Hugging Face refused HF_TOKEN for ${repo.spec.repo}: it is invalid or expired; create a new one at ${repo.endpoint}/settings/tokens`
        : `Hugging Face requires a login for ${repo.spec.repo}: set HF_TOKEN`,
    );
  }
  return httpError(`Hugging Face ${repo.spec.repo}${path ? `/${path}` : ''}`, response);
}
