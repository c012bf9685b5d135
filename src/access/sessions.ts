import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isMissing, writeFileAtomically } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import { Mutex } from '../lib/serial.js';

export const SESSION_COOKIE = 'phoenix_session';
export const SESSION_LIFETIME_MS = 7 * 24 * 3600 * 1000;
/** The oldest sessions go first past this many, so the file stays small whatever happens. */
const MAX_SESSIONS = 1000;

interface SessionFile {
  version: 1;
  /** Fingerprint of the login the sessions were opened with: another login ends them all. */
  login: string;
  /** sha256 of each live session id → when it expires (ms since the epoch). */
  sessions: Record<string, number>;
}

export interface SessionStoreOptions {
  stateDir: string;
  /** The signing key (loadSessionKey). */
  key: Buffer;
  /** PHOENIX_USERNAME and, when the user set it, PHOENIX_PASSWORD: changing either ends every session. */
  login: string;
  log: Logger;
  now?: () => number;
}

/**
 * Browser sessions. The cookie is `<id>.<HMAC of id>`: nothing can be forged without the key, and
 * the id must also be live in `<stateDir>/sessions.json` (mode 600), so logging out ends a session
 * for every copy of its cookie, and a restart of the board keeps everyone signed in. The file
 * holds hashes of the ids, never a usable cookie.
 */
export class SessionStore {
  private readonly mutex = new Mutex();
  private readonly now: () => number;

  private constructor(
    private readonly options: SessionStoreOptions,
    private readonly file: string,
    private readonly login: string,
    private readonly live: Map<string, number>,
  ) {
    this.now = options.now ?? Date.now;
  }

  static async open(options: SessionStoreOptions): Promise<SessionStore> {
    const file = path.join(options.stateDir, 'sessions.json');
    const login = createHmac('sha256', options.key).update(`login\0${options.login}`).digest('base64url');
    const live = new Map<string, number>();
    const saved = await readSessionFile(file, options.log);
    if (saved && saved.login !== login) options.log.info('the login changed (PHOENIX_USERNAME or PHOENIX_PASSWORD): every session ended');
    else if (saved) for (const [id, expires] of Object.entries(saved.sessions)) live.set(id, expires);
    const store = new SessionStore(options, file, login, live);
    if (saved && saved.login !== login) await store.save();
    return store;
  }

  /** Opens a session and returns its cookie value. */
  async create(): Promise<{ value: string; expires: Date }> {
    const id = randomBytes(32).toString('base64url');
    const expires = this.now() + SESSION_LIFETIME_MS;
    this.prune();
    this.live.set(hashId(id), expires);
    await this.save();
    return { value: `${id}.${this.sign(id)}`, expires: new Date(expires) };
  }

  /** Whether a cookie value names a live session signed with this pod's key. */
  verify(value: string | undefined): boolean {
    const id = this.idOf(value);
    if (!id) return false;
    const expires = this.live.get(hashId(id));
    return expires !== undefined && expires > this.now();
  }

  /** Ends the session a cookie names, for every copy of that cookie. */
  async revoke(value: string | undefined): Promise<void> {
    const id = this.idOf(value);
    if (!id || !this.live.delete(hashId(id))) return;
    await this.save();
  }

  /** The id of a correctly signed cookie value, or undefined. */
  private idOf(value: string | undefined): string | undefined {
    const [id, mac, extra] = (value ?? '').split('.');
    if (!id || !mac || extra !== undefined) return undefined;
    const given = Buffer.from(mac);
    const expected = Buffer.from(this.sign(id));
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : undefined;
  }

  private sign(id: string): string {
    return createHmac('sha256', this.options.key).update(`session\0${id}`).digest('base64url');
  }

  private prune(): void {
    const now = this.now();
    for (const [id, expires] of this.live) if (expires <= now) this.live.delete(id);
    const excess = this.live.size - (MAX_SESSIONS - 1);
    if (excess > 0) [...this.live.entries()].sort((a, b) => a[1] - b[1]).slice(0, excess).forEach(([id]) => this.live.delete(id));
  }

  private save(): Promise<void> {
    return this.mutex.run(() => {
      const data: SessionFile = { version: 1, login: this.login, sessions: Object.fromEntries(this.live) };
      return writeFileAtomically(this.file, JSON.stringify(data), { mode: 0o600 });
    });
  }
}

function hashId(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

/** The saved sessions; none when there is no file yet, or when it is damaged (everyone signs in again). */
async function readSessionFile(file: string, log: Logger): Promise<SessionFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    const data = JSON.parse(text) as Partial<SessionFile>;
    if (data.version === 1 && typeof data.login === 'string' && data.sessions && typeof data.sessions === 'object') {
      const sessions = Object.fromEntries(Object.entries(data.sessions).filter(([, v]) => typeof v === 'number'));
      return { version: 1, login: data.login, sessions };
    }
  } catch {
    // fall through: treated like any other unreadable content
  }
  log.warn({ file }, 'the saved sessions cannot be read; everyone signs in again');
  return undefined;
}
