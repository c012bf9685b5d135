import type { ErrorRequestHandler } from 'express';
import type { Logger } from '../lib/log.js';

/**
 * Errors of Phoenix's HTTP servers as JSON: a body that is not valid JSON is 400 with the problem,
 * another client error keeps its status, anything else is a logged 500. Never an HTML stack trace.
 */
export function jsonErrors(log: Logger): ErrorRequestHandler {
  return (err: Error & { status?: number; type?: string }, _req, res, _next) => {
    if (err.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'invalid JSON', problems: [`body: ${err.message}`] });
      return;
    }
    log.error({ err: err.message }, 'request failed');
    res.status(err.status && err.status >= 400 && err.status < 500 ? err.status : 500).json({ error: err.message });
  };
}
