import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestHandler, Response } from 'express';
import type { Gate, Refusal } from './gate.js';
import { fromBrowser, wantsPage } from './request.js';

/**
 * Lets a request through the gate, or answers it: a page load without a login goes to the login
 * form (coming back afterwards); everything else gets the refusal as JSON, a 401 with a Basic
 * challenge for scripts (a browser's own scripts get none, so no password dialog pops up).
 */
export function requireLogin(gate: Gate): RequestHandler {
  return (req, res, next) => {
    const verdict = gate.check(req);
    if (verdict.ok) {
      next();
      return;
    }
    if (verdict.status === 401 && wantsPage(req)) {
      res.redirect(302, `/login?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    refuse(req, res, verdict);
  };
}

export function refuse(req: IncomingMessage, res: Response, refusal: Refusal): void {
  if (refusal.status === 429) res.set('Retry-After', String(refusal.retryAfterS));
  if (refusal.status === 401 && !fromBrowser(req)) res.set('WWW-Authenticate', 'Basic realm="Phoenix", charset="UTF-8"');
  res.status(refusal.status).json({ error: refusal.error });
}

/** The same refusal for a WebSocket upgrade, written on the raw socket, which is then closed. */
export function refuseUpgrade(socket: Duplex, refusal: Refusal): void {
  const body = JSON.stringify({ error: refusal.error });
  const head = [
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(refusal.status === 429 ? [`Retry-After: ${refusal.retryAfterS}`] : []),
    'Connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}
