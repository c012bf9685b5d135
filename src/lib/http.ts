import { TransientError, UserError } from './errors.js';

/** Phoenix's User-Agent: explicit, since some CDNs refuse library defaults. */
export const USER_AGENT = 'phoenix-provisioner/0.1 (+ComfyUI pod)';

export interface FollowOptions {
  method?: 'GET' | 'HEAD';
  /** Headers for every hop (Range, Accept). */
  headers?: Record<string, string>;
  /** Headers (tokens) sent only while the request stays on `secretOrigin`. */
  secretHeaders?: Record<string, string>;
  secretOrigin?: string;
  signal?: AbortSignal;
  maxRedirects?: number;
}

export interface FollowedResponse {
  response: Response;
  /** The URL that finally answered. */
  url: string;
  /** Every hop's response before the final one (e.g. Hugging Face's 302 carries X-Linked-Etag). */
  redirects: Response[];
}

/**
 * fetch with redirects followed by hand, so secret headers are dropped the moment a redirect
 * leaves their origin (object storage behind CivitAI rejects requests that carry Authorization).
 */
export async function fetchFollowing(url: string, options: FollowOptions = {}): Promise<FollowedResponse> {
  const secretOrigin = options.secretOrigin ?? new URL(url).origin;
  const redirects: Response[] = [];
  let current = url;
  for (let hop = 0; hop <= (options.maxRedirects ?? 10); hop++) {
    const headers: Record<string, string> = {
      'user-agent': USER_AGENT,
      ...options.headers,
      ...secretHeadersFor(current, secretOrigin, options.secretHeaders),
    };
    let response: Response;
    try {
      response = await fetch(current, {
        method: options.method ?? 'GET',
        headers,
        redirect: 'manual',
        signal: options.signal,
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      throw new TransientError(`cannot reach ${new URL(current).origin}: ${causeOf(err)}`, { cause: err });
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      redirects.push(response);
      current = new URL(location, current).toString();
      continue;
    }
    return { response, url: current, redirects };
  }
  throw new UserError(`too many redirects starting at ${new URL(url).origin}`);
}

/**
 * The rule every request Phoenix sends follows, redirects included: secret headers (tokens) go to
 * their own origin and nowhere else. Object storage behind CivitAI rejects requests that carry
 * Authorization, and a CDN or another host must never see a token.
 */
export function secretHeadersFor(
  url: string | URL,
  secretOrigin: string,
  secretHeaders: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  return secretHeaders && new URL(url).origin === secretOrigin ? { ...secretHeaders } : {};
}

/**
 * The whole file's size from the answer to a `Range: bytes=0-0` probe: the total of
 * Content-Range on a 206, Content-Length on a 200 (a server that ignored Range).
 */
export function probedSize(response: Response): number | undefined {
  const value =
    response.status === 206
      ? /\/(\d+)\s*$/.exec(response.headers.get('content-range') ?? '')?.[1]
      : response.headers.get('content-length');
  return value ? Number(value) : undefined;
}

/** Retry-After in milliseconds (seconds or an HTTP date), if present. */
export function retryAfterMs(response: Response): number | undefined {
  return parseRetryAfter(response.headers.get('retry-after'));
}

/** A Retry-After value (seconds or an HTTP date) in milliseconds from now. */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The generic mapping of an unexpected HTTP status to the error kind that decides retries. */
export function httpError(what: string, response: Response): Error {
  const status = response.status;
  if (status === 429 || status >= 500) {
    return new TransientError(`${what}: HTTP ${status}`, { retryAfterMs: retryAfterMs(response) });
  }
  return new UserError(`${what}: HTTP ${status}`);
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** Parses Content-Disposition's file name: RFC 6266 `filename*=UTF-8''…` first, then `filename=`. */
export function filenameFromContentDisposition(header: string | null): string | undefined {
  if (!header) return undefined;
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[2]!.trim().replace(/^"|"$/g, ''));
    } catch {
      /* fall through to the plain parameter */
    }
  }
  const plain = /filename\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]+)/i.exec(header);
  if (!plain) return undefined;
  return (plain[2] !== undefined ? plain[2].replace(/\\(.)/g, '$1') : plain[1]!).trim();
}

/**
 * Refuses a response that is a web page or JSON when a file called `name` is expected: a login
 * wall, an expired link or an API error answered with 200 must not be saved as a model. A file
 * that really is HTML or JSON (by its extension) passes.
 */
export function assertLooksLikeModel(response: Response, name: string, what: string): void {
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const extension = /\.[^.]+$/.exec(name.toLowerCase())?.[0] ?? '';
  const page = (type === 'text/html' || type === 'application/xhtml+xml') && extension !== '.html' && extension !== '.htm';
  const json = (type === 'application/json' || type.endsWith('+json')) && extension !== '.json';
  if (page || json) {
    throw new UserError(
      `${what} answered with ${page ? 'a web page' : 'JSON'} instead of the file ${name || '(unnamed)'}: ` +
        'the link needs a login, has expired, or is not a direct download link',
    );
  }
}
