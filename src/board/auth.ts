import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';

/** HTTP Basic auth for pages, API and assets alike; constant-time comparison. */
export function basicAuth(username: string, password: string): RequestHandler {
  const expected = Buffer.from(`${username}:${password}`);
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    const given = match ? Buffer.from(match[1]!, 'base64') : Buffer.alloc(0);
    if (given.length === expected.length && timingSafeEqual(given, expected)) {
      next();
      return;
    }
    res.set('WWW-Authenticate', 'Basic realm="Phoenix", charset="UTF-8"').status(401).json({ error: 'authentication required' });
  };
}
