import type { IncomingMessage } from 'node:http';
import { parse as parseCookies } from 'cookie';
import proxyaddr from 'proxy-addr';

/** What a request says about itself, read the same way for HTTP requests and WebSocket upgrades. */

export type TrustedProxies = (address: string, hop: number) => boolean;

/** PHOENIX_TRUSTED_PROXIES as proxy-addr reads it (validated by the configuration). */
export function trustedProxies(list: readonly string[]): TrustedProxies {
  return proxyaddr.compile([...list]);
}

/**
 * The client's address: the peer's, unless the peer is a trusted proxy, in which case
 * X-Forwarded-For is read from the right, stopping at the first address not trusted. An address a
 * client writes into that header itself is therefore ignored unless a trusted proxy vouches for it.
 */
export function clientAddress(req: IncomingMessage, trust: TrustedProxies): string {
  return proxyaddr(req, trust);
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function isMutating(req: IncomingMessage): boolean {
  return MUTATING.has(req.method ?? 'GET');
}

/**
 * Whether a browser sent the request from another site: its Origin (or, without one, its
 * Referer) names a host other than the one the request went to. Requests that carry neither
 * (scripts, curl) pass. The host the browser used is the Host header, or X-Forwarded-Host behind
 * a proxy that rewrites Host (a page cannot set either on a cross-site request), or one of
 * `extraHosts` (RunPod's proxy host for this pod and port).
 */
export function isCrossSite(req: IncomingMessage, extraHosts: readonly string[] = []): boolean {
  const source = header(req, 'origin') ?? header(req, 'referer');
  if (source === undefined) return false;
  let host: string;
  try {
    host = new URL(source).host.toLowerCase();
  } catch {
    return true; // "null" (a sandboxed frame, a file) or garbage
  }
  const targets = [header(req, 'host'), header(req, 'x-forwarded-host')?.split(',')[0]?.trim(), ...extraHosts];
  return !targets.some((t) => t !== undefined && t !== '' && t.toLowerCase() === host);
}

/** Whether the request came over https to a proxy in front (RunPod's sends X-Forwarded-Proto). */
export function isHttps(req: IncomingMessage): boolean {
  return header(req, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() === 'https';
}

/** A browser finding its way: a page load that should land on the login form rather than a 401. */
export function wantsPage(req: IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && /\btext\/html\b/.test(header(req, 'accept') ?? '');
}

/**
 * Whether a browser made the request (it sends Sec-Fetch-Site to https and localhost origins;
 * Node's fetch sends Sec-Fetch-Mode only).
 */
export function fromBrowser(req: IncomingMessage): boolean {
  return header(req, 'sec-fetch-site') !== undefined;
}

export function cookieValue(req: IncomingMessage, name: string): string | undefined {
  const raw = header(req, 'cookie');
  return raw ? parseCookies(raw)[name] : undefined;
}

/** Removes one cookie from the Cookie header, leaving the others as they were sent. */
export function withoutCookie(raw: string, name: string): string {
  return raw
    .split(';')
    .filter((part) => part.split('=')[0]!.trim() !== name)
    .join(';')
    .trim();
}

export type Presented = { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string } | { kind: 'none' };

/** The credentials in the Authorization header, if any. */
export function presentedCredentials(req: IncomingMessage): Presented {
  const value = header(req, 'authorization') ?? '';
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? { kind: 'basic', username: decoded, password: '' } : { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (bearer) return { kind: 'bearer', token: bearer[1]! };
  // Any other scheme (or a malformed header) is an attempt that cannot succeed.
  return value ? { kind: 'basic', username: '', password: '' } : { kind: 'none' };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
