import express, { type Request, type Router } from 'express';
import type { Gate } from './gate.js';
import { loginPage, safeNext, signedInPage } from './login-page.js';
import { refuse } from './middleware.js';
import { cookieValue, isHttps } from './request.js';
import { SESSION_COOKIE } from './sessions.js';

/**
 * GET /login (the form, or a sign-out button when signed in), POST /login (form or JSON
 * `{username, password}`: sets the session cookie), POST /logout (ends the session everywhere).
 * Mounted on every port, because RunPod gives each port its own host name and cookies are per host.
 */
export function loginRouter(gate: Gate): Router {
  const router = express.Router();
  const bodies = [express.urlencoded({ extended: false, limit: '8kb' }), express.json({ limit: '8kb' })];

  router.get('/login', (req, res) => {
    const next = safeNext(req.query.next);
    res.set('Cache-Control', 'no-store').type('html');
    res.send(gate.sessions.verify(cookieValue(req, SESSION_COOKIE)) ? signedInPage(next) : loginPage({ next }));
  });

  router.post('/login', ...bodies, async (req, res) => {
    if (gate.crossSite(req)) {
      refuse(req, res, { status: 403, error: 'sign-in from another site refused' });
      return;
    }
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof body.username === 'string' ? body.username : '';
    const password = typeof body.password === 'string' ? body.password : '';
    const next = safeNext(body.next);
    const verdict = gate.checkLogin(req, username, password);
    if (!verdict.ok) {
      if (!wantsHtml(req)) {
        refuse(req, res, verdict);
        return;
      }
      if (verdict.status === 429) res.set('Retry-After', String(verdict.retryAfterS));
      res.status(verdict.status).set('Cache-Control', 'no-store').type('html').send(loginPage({ next, error: verdict.error, username }));
      return;
    }
    const session = await gate.sessions.create();
    res.cookie(SESSION_COOKIE, session.value, { ...cookieOptions(req), expires: session.expires });
    if (wantsHtml(req)) res.redirect(303, next);
    else res.json({ ok: true });
  });

  router.post('/logout', async (req, res) => {
    if (gate.crossSite(req)) {
      refuse(req, res, { status: 403, error: 'sign-out from another site refused' });
      return;
    }
    await gate.sessions.revoke(cookieValue(req, SESSION_COOKIE));
    res.clearCookie(SESSION_COOKIE, cookieOptions(req));
    if (wantsHtml(req)) res.redirect(303, '/login');
    else res.status(204).end();
  });

  return router;
}

/** HttpOnly (no script reads it), SameSite=Lax (not sent on other sites' posts), Secure behind https. */
function cookieOptions(req: Request): { httpOnly: true; sameSite: 'lax'; secure: boolean; path: '/' } {
  return { httpOnly: true, sameSite: 'lax', secure: isHttps(req), path: '/' };
}

/** A form post from a page (Accept: text/html) rather than a script. */
function wantsHtml(req: Request): boolean {
  return req.accepts(['json', 'html']) === 'html';
}
