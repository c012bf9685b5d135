import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeNamespaces, makeUser, type Namespaces } from '../fixtures/netns.js';
import { REPO_ROOT } from '../helpers.js';

/**
 * The image's way of setting the firewall (scripts/privacy-firewall.sh as root, then a marker
 * Phoenix reads) and how far Phoenix trusts that marker, inside a network namespace of the test's.
 */
describe.skipIf(process.getuid?.() !== 0)('the firewall set at container start', () => {
  let ns: Namespaces;
  let user: Awaited<ReturnType<typeof makeUser>>;
  let tmp: string;

  beforeAll(async () => {
    ns = await makeNamespaces(['outside.example']);
    user = await makeUser();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'phoenix-firewall-'));
    await chmod(tmp, 0o755);
  }, 30_000);
  afterAll(async () => {
    await user?.remove();
    await ns?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** ensureFirewall as Phoenix calls it, in the pod's namespace, as `asUid` (root may also load rules). */
  const ensure = async (marker: string, asUid = 0) => {
    const code = `import { ensureFirewall } from '${REPO_ROOT}/src/privacy/firewall.ts';
      console.log(JSON.stringify(await ensureFirewall({ user: '${user.name}', uid: ${user.uid}, markerPath: '${marker}' })));`;
    const r = await ns.inPod('setpriv', [`--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', process.execPath, '--import', `${REPO_ROOT}/node_modules/tsx/dist/esm/index.mjs`, '--input-type=module', '-e', code], { cwd: '/tmp' });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    return JSON.parse(String(r.stdout)) as { enforced: boolean; how?: string; reason?: string };
  };

  it('loads the rules for the user and leaves a root-owned marker that Phoenix trusts without rights of its own', async () => {
    const marker = path.join(tmp, 'run', 'privacy-firewall');
    const r = await ns.inPod('sh', [path.join(REPO_ROOT, 'scripts/privacy-firewall.sh'), user.name, path.join(REPO_ROOT, 'config/privacy-firewall.nft'), marker]);
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const listed = await ns.inPod('nft', ['list', 'table', 'inet', 'phoenix_privacy']);
    expect(String(listed.stdout)).toMatch(new RegExp(`meta skuid ${user.uid} oifname != "lo" counter packets \\d+ bytes \\d+ reject`));
    // Phoenix runs unprivileged (nobody here): it cannot list nft rules, so the marker is what it has.
    expect(await ensure(marker, 65534)).toEqual({ enforced: true, how: 'marker' });
    const direct = await ns.inPod('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '/usr/bin/python3', '-c', `import socket; socket.create_connection(("${ns.addresses['outside.example']}", 80), 3)`]);
    expect(direct.exitCode).not.toBe(0);
  });

  it('trusts no marker that names another uid or that others could have written', async () => {
    const wrongUid = path.join(tmp, 'wrong-uid');
    await writeFile(wrongUid, `${user.uid + 1}\n`, { mode: 0o644 });
    const writable = path.join(tmp, 'writable');
    await writeFile(writable, `${user.uid}\n`);
    await chmod(writable, 0o666);
    for (const marker of [wrongUid, writable, path.join(tmp, 'missing')]) {
      const state = await ensure(marker, 65534);
      expect(state.enforced, marker).toBe(false);
      expect(state.reason).toMatch(/cannot set firewall rules \(needs CAP_NET_ADMIN/);
    }
  });
});
