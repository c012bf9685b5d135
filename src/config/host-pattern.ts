import net from 'node:net';

/**
 * Host patterns as PRIVACY_ALLOW / PRIVACY_DENY and `phoenix privacy allow|deny` take them:
 * a host name (`example.com`: that host only), `*.example.com` (every name below example.com, at
 * any depth, not example.com itself) or an IP address. Case and a trailing dot do not matter.
 */

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_SECONDS = 365 * 24 * 3600;

/** The pattern in its canonical form (lowercase, no trailing dot, IPv6 without brackets). */
export function normalizeHost(text: string): string {
  const t = text.trim().toLowerCase().replace(/\.$/, '');
  return t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
}

/** Why `text` is not a host pattern, or undefined when it is one. */
export function hostPatternProblem(text: string): string | undefined {
  const host = normalizeHost(text);
  const why = `"${text}" is not a host name, *.domain pattern or IP address`;
  if (host === '' || host.length > 253) return why;
  if (net.isIP(host)) return undefined;
  const labels = host.split('.');
  const named = host.startsWith('*.') ? labels.slice(1) : labels;
  if (named.length === 0 || !named.every((l) => LABEL.test(l))) return why;
  // `*.com` would allow or deny a whole top-level domain: almost surely a slip.
  if (host.startsWith('*.') && named.length < 2) return `"${text}" covers a whole top-level domain; name a domain below it`;
  return undefined;
}

/** Every problem of a list of patterns, each named `<where>[i]`. */
export function hostPatternProblems(where: string, patterns: readonly string[]): string[] {
  return patterns.flatMap((p, i) => {
    const problem = hostPatternProblem(p);
    return problem ? [`${where}[${i}]: ${problem}`] : [];
  });
}

/**
 * Whether `host` matches `pattern`. A `*` stands for one or more characters of a host name, dots
 * included: users write it only as a leading `*.`, the built-in lists also inside a label
 * (`*-aiplatform.googleapis.com`).
 */
export function hostMatches(pattern: string, host: string): boolean {
  const p = normalizeHost(pattern);
  const h = normalizeHost(host);
  if (!p.includes('*')) return p === h;
  const source = p
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, '\\$&'))
    .join('[a-z0-9_.-]+');
  return new RegExp(`^${source}$`).test(h);
}

/** A duration in whole seconds (1 s to a year), or the problem with it. */
export function parseSeconds(text: string): { seconds: number } | { problem: string } {
  if (!/^\d+$/.test(text.trim())) return { problem: `"${text}" is not a whole number of seconds` };
  const seconds = Number(text.trim());
  if (seconds < 1 || seconds > MAX_SECONDS) return { problem: `${seconds} is out of range (1 to ${MAX_SECONDS} seconds)` };
  return { seconds };
}
