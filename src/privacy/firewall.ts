import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/**
 * nftables rules by user (`meta skuid`) that leave ComfyUI's user only the loopback interface, so
 * its traffic must go through the egress proxy. Setting them needs CAP_NET_ADMIN: in the image the
 * entrypoint (root, before dropping privileges) loads config/privacy-firewall.nft and leaves a
 * marker; a Phoenix running as root loads the same file itself.
 */

export const FIREWALL_TABLE = 'phoenix_privacy';
/** Written by the image's entrypoint (root) after loading the rules: the uid they apply to. */
export const FIREWALL_MARKER = '/run/phoenix/privacy-firewall';
const RULESET = fileURLToPath(new URL('../../config/privacy-firewall.nft', import.meta.url));

export type FirewallState =
  | { enforced: true; how: 'marker' | 'applied' }
  | { enforced: false; reason: string };

export interface FirewallOptions {
  /** COMFYUI_USER and its uid. */
  user: string;
  uid: number;
  markerPath?: string;
}

/**
 * Makes sure the rules hold for `uid`: already loaded at container start (a root-owned marker
 * naming that uid, which only root could have written, and only CAP_NET_ADMIN could undo), or
 * loaded now and read back. Otherwise says why not; it never claims rules it did not see set.
 */
export async function ensureFirewall(options: FirewallOptions): Promise<FirewallState> {
  if (await markerHolds(options.markerPath ?? FIREWALL_MARKER, options.uid)) return { enforced: true, how: 'marker' };
  const loaded = await execa('nft', ['-D', `comfy_user=${options.uid}`, '-f', RULESET], { reject: false, stdin: 'ignore' });
  if (loaded.exitCode !== 0) {
    const why = loaded.code === 'ENOENT' ? 'nft is not installed' : firstLine(String(loaded.stderr)) || `nft exited with ${loaded.exitCode}`;
    return { enforced: false, reason: `cannot set firewall rules (needs CAP_NET_ADMIN, e.g. docker run --cap-add NET_ADMIN): ${why}` };
  }
  if (!(await rulesFor(options.uid))) return { enforced: false, reason: 'firewall rules were loaded but do not read back' };
  return { enforced: true, how: 'applied' };
}

/** Removes the rules this process loaded. */
export async function removeFirewall(): Promise<void> {
  await execa('nft', ['delete', 'table', 'inet', FIREWALL_TABLE], { reject: false, stdin: 'ignore' });
}

/** Whether the loaded table rejects `uid`'s non-loopback traffic. */
export async function rulesFor(uid: number): Promise<boolean> {
  const listed = await execa('nft', ['list', 'table', 'inet', FIREWALL_TABLE], { reject: false, stdin: 'ignore' });
  return listed.exitCode === 0 && new RegExp(`skuid ${uid} oifname != "lo" .*reject`).test(String(listed.stdout));
}

async function markerHolds(file: string, uid: number): Promise<boolean> {
  try {
    const s = await stat(file);
    if (s.uid !== 0 || (s.mode & 0o022) !== 0) return false;
    return (await readFile(file, 'utf8')).trim() === String(uid);
  } catch {
    return false;
  }
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim())?.trim() ?? '';
}
