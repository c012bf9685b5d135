import { readFile } from 'node:fs/promises';

/**
 * Versions shown in /status: Phoenix's own, Node's, and the pinned inputs of the image
 * (config/versions.conf, KEY=value lines) where present.
 */
export function readVersions(): Promise<Record<string, string>> {
  // The files do not change while the process runs: read them once.
  versions ??= loadVersions();
  return versions;
}

let versions: Promise<Record<string, string>> | undefined;

async function loadVersions(): Promise<Record<string, string>> {
  const root = new URL('../../', import.meta.url);
  const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8').catch(() => '{}')) as { version?: string };
  const out: Record<string, string> = { phoenix: pkg.version ?? 'unknown', node: process.version };
  const conf = await readFile(new URL('config/versions.conf', root), 'utf8').catch(() => '');
  for (const line of conf.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*"?([^"#\s]*)"?/.exec(line);
    if (m && m[2]) out[m[1]!.toLowerCase()] = m[2];
  }
  return out;
}
