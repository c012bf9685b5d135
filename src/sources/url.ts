import type { StoredModelSpec } from '../config/model-spec.js';
import { UserError } from '../lib/errors.js';
import { assertLooksLikeModel, fetchFollowing, filenameFromContentDisposition, httpError, probedSize } from '../lib/http.js';
import { sanitizeFilename } from '../lib/names.js';
import { splitUserInfo } from '../lib/url-credentials.js';
import type { ModelSourceClient, ResolvedFile, SourceContext } from './types.js';

type UrlSpec = Extract<StoredModelSpec, { source: 'url' }>;

/**
 * Any http(s) URL. A one-byte ranged GET learns the name (Content-Disposition, else the URL's
 * last path segment) and the size (Content-Range) without downloading the file.
 */
export const urlSource: ModelSourceClient<UrlSpec> = {
  source: 'url',
  async resolve(spec, ctx): Promise<ResolvedFile[]> {
    const { url, headers } = withUserInfoAsHeader(spec.url, ctx.secretHeaders ?? {});
    const origin = new URL(url).origin;
    const probe = await probeUrl(url, headers, origin, ctx, spec.filename);
    const name = spec.filename ?? sanitizeFilename(probe.name ?? '');
    if (!name) {
      throw new UserError(`cannot tell a file name for ${origin}${new URL(url).pathname}: set "filename"`);
    }
    return [
      {
        name,
        ...(probe.bytes !== undefined ? { bytes: probe.bytes } : {}),
        ...(spec.sha256 ? { sha256: spec.sha256 } : {}),
        request: { url, headers, headersOrigin: origin },
      },
    ];
  },
};

/**
 * `https://user:password@host/…` as fetch accepts it: the URL without user-info, and the
 * user-info as a Basic Authorization header, secret like any header (sent to that origin only).
 * An Authorization header the manifest gives wins.
 */
function withUserInfoAsHeader(url: string, headers: Record<string, string>): { url: string; headers: Record<string, string> } {
  const split = splitUserInfo(url);
  if (!split) return { url, headers };
  const basic = `Basic ${Buffer.from(`${split.username}:${split.password}`).toString('base64')}`;
  const given = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
  return { url: split.url, headers: given ? headers : { authorization: basic, ...headers } };
}

export interface Probe {
  name: string | undefined;
  bytes: number | undefined;
  finalUrl: string;
}

/** Ranged one-byte GET (HEAD is refused by some APIs); the body is not read. */
export async function probeUrl(
  url: string,
  secretHeaders: Record<string, string>,
  secretOrigin: string,
  ctx: Pick<SourceContext, 'signal'>,
  /** The name the file will be saved under, when the user chose it: decides what content is plausible. */
  savedName?: string,
): Promise<Probe> {
  const { response, url: finalUrl } = await fetchFollowing(url, {
    headers: { range: 'bytes=0-0' },
    secretHeaders,
    secretOrigin,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  await response.body?.cancel();
  if (response.status !== 200 && response.status !== 206) {
    throw httpError(`GET ${new URL(url).origin}${new URL(url).pathname}`, response);
  }
  const fromUrl = decodeURIComponent(new URL(finalUrl).pathname.split('/').pop() ?? '');
  const name = filenameFromContentDisposition(response.headers.get('content-disposition')) ?? (fromUrl || undefined);
  assertLooksLikeModel(response, savedName ?? name ?? '', `GET ${new URL(url).origin}${new URL(url).pathname}`);
  return {
    name,
    bytes: probedSize(response),
    finalUrl,
  };
}
