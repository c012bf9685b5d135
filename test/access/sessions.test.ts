import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSessionKey } from '../../src/access/session-key.js';
import { SESSION_LIFETIME_MS, SessionStore } from '../../src/access/sessions.js';
import { silentLog } from '../helpers.js';

describe('sessions', () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = path.join(await mkdtemp(path.join(os.tmpdir(), 'phoenix-sessions-')), '.phoenix');
  });
  afterEach(async () => {
    await rm(path.dirname(stateDir), { recursive: true, force: true });
  });

  const open = async (login = 'admin\0secret-password', now?: () => number) =>
    SessionStore.open({ stateDir, key: await loadSessionKey(stateDir), login, log: silentLog, ...(now ? { now } : {}) });

  it('keeps one signing key, readable by its owner only, across starts', async () => {
    const first = await loadSessionKey(stateDir);
    const [a, b] = await Promise.all([loadSessionKey(stateDir), loadSessionKey(stateDir)]);
    expect(first.length).toBe(32);
    expect(a.equals(first) && b.equals(first)).toBe(true);
    expect((await stat(path.join(stateDir, 'session.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
  });

  it('accepts its own cookies, refuses altered or foreign ones, and survives a restart', async () => {
    const store = await open();
    const { value, expires } = await store.create();
    expect(store.verify(value)).toBe(true);
    expect(expires.getTime() - Date.now()).toBeGreaterThan(SESSION_LIFETIME_MS - 60_000);
    const [id, mac] = value.split('.') as [string, string];
    const alter = (text: string) => `${text.slice(0, -1)}${text.endsWith('A') ? 'B' : 'A'}`;
    expect(store.verify(`${id}.${alter(mac)}`)).toBe(false);
    expect(store.verify(`${alter(id)}.${mac}`)).toBe(false);
    expect(store.verify(id)).toBe(false);
    expect(store.verify(undefined)).toBe(false);

    // The file holds hashes of the ids, never a cookie, and only its owner may read it.
    const file = path.join(stateDir, 'sessions.json');
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(id);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const restarted = await open();
    expect(restarted.verify(value)).toBe(true);

    // Another pod's key signs cookies this one refuses.
    const otherDir = `${stateDir}-other`;
    const other = await SessionStore.open({ stateDir: otherDir, key: await loadSessionKey(otherDir), login: 'admin\0secret-password', log: silentLog });
    expect(other.verify(value)).toBe(false);
    await rm(otherDir, { recursive: true, force: true });
  });

  it('ends a session for every copy of its cookie, also after a restart', async () => {
    const store = await open();
    const kept = await store.create();
    const ended = await store.create();
    await store.revoke(ended.value);
    expect(store.verify(ended.value)).toBe(false);
    expect(store.verify(kept.value)).toBe(true);
    expect((await open()).verify(ended.value)).toBe(false);
  });

  it('expires sessions and ends them all when the login changes', async () => {
    let t = Date.now();
    const store = await open(undefined, () => t);
    const { value } = await store.create();
    t += SESSION_LIFETIME_MS + 1;
    expect(store.verify(value)).toBe(false);

    const fresh = await (await open()).create();
    expect((await open('admin\0another-password')).verify(fresh.value)).toBe(false);
    expect((await open()).verify(fresh.value)).toBe(false);
  });

  it('starts without sessions when the file is damaged', async () => {
    const store = await open();
    const { value } = await store.create();
    await writeFile(path.join(stateDir, 'sessions.json'), '{"version": 1, "sess');
    const reopened = await open();
    expect(reopened.verify(value)).toBe(false);
    const next = await reopened.create();
    expect((await open()).verify(next.value)).toBe(true);
  });
});
