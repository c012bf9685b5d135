import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import { clientAddress, cookieValue, isCrossSite, isMutating, presentedCredentials, trustedProxies, type TrustedProxies } from './request.js';
import { loadSessionKey } from './session-key.js';
import { SESSION_COOKIE, SessionStore } from './sessions.js';
import { LoginThrottle, type ThrottleOptions } from './throttle.js';

/** Why a request may not pass, as the HTTP answer says it. */
export type Refusal =
  | { status: 401; error: string }
  | { status: 403; error: string }
  | { status: 429; error: string; retryAfterS: number };

export type Verdict = { ok: true } | ({ ok: false } & Refusal);

export interface GateOptions {
  config: Config;
  log: Logger;
  /** The throttle's timing (tests lengthen its lockouts). */
  throttle?: ThrottleOptions;
}

/**
 * The one login of every Phoenix port: a session cookie (browsers), Basic auth or a Bearer token
 * (scripts), with failed attempts throttled per client and mutating requests from other sites
 * refused. One Gate serves the board and the ComfyUI proxy, so they share sessions and throttling.
 */
export class Gate {
  private readonly trust: TrustedProxies;
  private readonly username: Buffer;
  private readonly password: Buffer;
  private readonly token: Buffer;

  private constructor(
    readonly sessions: SessionStore,
    private readonly throttle: LoginThrottle,
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.trust = trustedProxies(config.server.trustedProxies);
    this.username = digest(config.server.username);
    this.password = digest(config.server.password);
    this.token = digest(config.server.apiToken);
  }

  static async open(options: GateOptions): Promise<Gate> {
    const { config, log } = options;
    const key = await loadSessionKey(config.stateDir);
    const login = `${config.server.username}\0${config.server.passwordGenerated ? '' : config.server.password}`;
    const sessions = await SessionStore.open({ stateDir: config.stateDir, key, login, log });
    return new Gate(sessions, new LoginThrottle(options.throttle), config, log);
  }

  /**
   * Whether a request may pass. A mutating request (or a WebSocket upgrade) from another site is
   * refused first; then a live session cookie passes; then the Authorization header is checked,
   * unless the client is locked out by earlier failures.
   */
  check(req: IncomingMessage, options: { upgrade?: boolean } = {}): Verdict {
    if ((isMutating(req) || options.upgrade) && isCrossSite(req, this.proxyHosts(req))) {
      return { ok: false, status: 403, error: 'request from another site refused (its Origin or Referer is not this host)' };
    }
    if (this.sessions.verify(cookieValue(req, SESSION_COOKIE))) return { ok: true };
    const presented = presentedCredentials(req);
    if (presented.kind === 'none') return { ok: false, status: 401, error: 'authentication required' };
    const valid =
      presented.kind === 'bearer'
        ? same(digest(presented.token), this.token)
        : same(digest(presented.username), this.username) && same(digest(presented.password), this.password);
    return this.attempt(req, valid);
  }

  /** A sign-in attempt through the form: throttled like any other. */
  checkLogin(req: IncomingMessage, username: string, password: string): Verdict {
    const valid = same(digest(username), this.username) && same(digest(password), this.password);
    return this.attempt(req, valid);
  }

  /**
   * Whether a browser request comes from this site: for the login form itself, which must refuse
   * cross-site posts before checking anything.
   */
  crossSite(req: IncomingMessage): boolean {
    return isCrossSite(req, this.proxyHosts(req));
  }

  private attempt(req: IncomingMessage, valid: boolean): Verdict {
    const client = clientAddress(req, this.trust);
    const wait = this.throttle.waitMs(client);
    if (wait > 0) return tooMany(wait);
    if (valid) {
      this.throttle.succeeded(client);
      return { ok: true };
    }
    const delay = this.throttle.failed(client);
    this.log.warn({ client, lockedOutMs: delay }, 'failed login');
    return { ok: false, status: 401, error: 'wrong user name, password or token' };
  }

  /** RunPod serves each port as https://<pod id>-<port>.proxy.runpod.net, whatever Host it forwards. */
  private proxyHosts(req: IncomingMessage): string[] {
    const podId = this.config.runpod.podId;
    return podId && req.socket.localPort ? [`${podId}-${req.socket.localPort}.proxy.runpod.net`.toLowerCase()] : [];
  }
}

function tooMany(waitMs: number): Verdict {
  const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
  return { ok: false, status: 429, error: `too many failed logins from this address; try again in ${retryAfterS} s`, retryAfterS };
}

/** Fixed-length digests, so comparing them in constant time reveals nothing, not even a length. */
function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function same(a: Buffer, b: Buffer): boolean {
  return timingSafeEqual(a, b);
}
