import type { StoredModelSpec } from '../config/model-spec.js';
import { UserError } from '../lib/errors.js';
import { assertLooksLikeModel, fetchFollowing, filenameFromContentDisposition, httpError, probedSize } from '../lib/http.js';
import { sanitizeFilename } from '../lib/names.js';
import type { ModelSourceClient, ResolvedFile, SourceContext } from './types.js';

type UrlSpec = Extract<StoredModelSpec, { source: 'url' }>;

/**
 * Any http(s) URL. A one-byte ranged GET learns the name (Content-Disposition, else the URL's
 * last path segment) and the size (Content-Range) without downloading the file.
 */
export const urlSource: ModelSourceClient<UrlSpec> = {
  source: 'url',
  async resolve(spec, ctx): Promise<ResolvedFile[]> {
    const headers = ctx.secretHeaders ?? {};
    const origin = new URL(spec.url).origin;
    const probe = await probeUrl(spec.url, headers, origin, ctx, spec.filename);
    const name = spec.filename ?? sanitizeFilename(probe.name ?? '');
    if (!name) {
      throw new UserError(`cannot tell a file name for ${origin}${new URL(spec.url).pathname}: set "filename"`);
    }
    return [
      {
        name,
        ...(probe.bytes !== undefined ? { bytes: probe.bytes } : {}),
        ...(spec.sha256 ? { sha256: spec.sha256 } : {}),
        request: { url: spec.url, headers, headersOrigin: origin },
      },
    ];
  },
};

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
