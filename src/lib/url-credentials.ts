/**
 * Credentials inside URLs are secrets, like headers: the user-info of `https://user:token@host/…`
 * and query parameters whose name says they carry a token or a signature. Phoenix keeps the whole
 * URL in the memory of the process that read the configuration, and shows or stores it redacted
 * (`https://***@host/…?token=***`).
 */

/** Query parameters treated as secrets, by exact name (case does not matter). */
const SECRET_PARAM_NAMES = new Set([
  'token',
  'access_token',
  'auth',
  'auth_token',
  'api_key',
  'apikey',
  'key',
  'password',
  'passwd',
  'secret',
  'client_secret',
  'sig',
  'signature',
  'policy',
  'key-pair-id',
]);

/** …and by part of the name: CivitAI's `token`, S3's `X-Amz-Signature`, GCS's `X-Goog-Credential`, Azure's `sig`. */
const SECRET_PARAM_PARTS = /token|secret|password|signature|credential/i;

export const REDACTED = '***';

/** Whether a query parameter's value is a secret. */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAM_NAMES.has(name.toLowerCase()) || SECRET_PARAM_PARTS.test(name);
}

function parse(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/** The URL with its user-info and secret query values replaced by `***`; text that is not a URL is returned as is. */
export function redactUrl(url: string): string {
  const u = parse(url);
  if (!u) return url;
  const hasUserInfo = u.username !== '' || u.password !== '';
  const params = [...u.searchParams.keys()].filter(isSecretParam);
  if (!hasUserInfo && params.length === 0) return url;
  const query = u.search
    .slice(1)
    .split('&')
    .map((pair) => {
      const [name = '', ...rest] = pair.split('=');
      return rest.length > 0 && isSecretParam(decodeURIComponent(name.replace(/\+/g, ' '))) ? `${name}=${REDACTED}` : pair;
    })
    .join('&');
  return `${u.protocol}//${hasUserInfo ? `${REDACTED}@` : ''}${u.host}${u.pathname}${query ? `?${query}` : ''}${u.hash}`;
}

/** Whether the URL carries credentials, or their `***` stand-ins: user-info or a secret query parameter. */
export function hasUrlCredentials(url: string): boolean {
  const u = parse(url);
  return u !== undefined && (u.username !== '' || u.password !== '' || [...u.searchParams.keys()].some(isSecretParam));
}

/**
 * The secret values inside a URL, as written and decoded, for redaction by value. The user name
 * counts only without a password (`https://TOKEN@host/…`): beside one it is usually a plain word.
 */
export function urlSecrets(url: string): string[] {
  const u = parse(url);
  if (!u) return [];
  const raw = [u.password || u.username];
  for (const [name, value] of u.searchParams) if (isSecretParam(name)) raw.push(value);
  const values = raw.filter((v) => v.length > 0);
  return [...new Set([...values, ...values.map(safeDecode)])];
}

/** The URL without its user-info, and that user-info decoded; query parameters stay. */
export function splitUserInfo(url: string): { url: string; username: string; password: string } | undefined {
  const u = parse(url);
  if (!u || (u.username === '' && u.password === '')) return undefined;
  const username = safeDecode(u.username);
  const password = safeDecode(u.password);
  u.username = '';
  u.password = '';
  return { url: u.toString(), username, password };
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
