import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../lib/log.js';
import { isConnectionError } from '../lib/redis-health.js';
import { BODY_LIMIT_BYTES, BodyErrorType } from './body.js';

/** What the board knows about its Redis connection: why it is unavailable, if it is (or why `cause` failed). */
export interface RedisAvailability {
  problem(cause?: Error): string | undefined;
}

/** Seconds a client is told to wait before asking again while Redis is away. */
const RETRY_AFTER_SECONDS = 5;

/**
 * While Redis is away every route that needs it answers 503 at once, naming why, instead of
 * waiting on a connection that is not there.
 */
export function requireRedis(redis: RedisAvailability | undefined): RequestHandler {
  return (_req, res, next) => {
    const problem = redis?.problem();
    if (problem) unavailable(res, problem);
    else next();
  };
}

/**
 * Bad requests are 4xx answers in the API's shape (`{error, problems}`), each naming what is wrong;
 * Redis going away mid-request is a 503; anything else is a 500, logged.
 */
export function errorHandler(log: Logger, redis: RedisAvailability | undefined): ErrorRequestHandler {
  return (err: Error & { status?: number; type?: string; length?: number }, _req, res, _next) => {
    const client = clientError(err);
    if (client) {
      res.status(client.status).json({ error: client.error, problems: [client.problem] });
      return;
    }
    const problem = redis?.problem() ?? (isConnectionError(err) ? (redis?.problem(err) ?? `Redis is unavailable (${err.message})`) : undefined);
    if (problem) {
      unavailable(res, problem);
      return;
    }
    log.error({ err: err.message }, 'request failed');
    res.status(err.status && err.status >= 400 && err.status < 500 ? err.status : 500).json({ error: err.message });
  };
}

function clientError(err: Error & { type?: string; length?: number }): { status: number; error: string; problem: string } | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return { status: 400, error: 'invalid JSON', problem: `body: ${err.message}` };
    case 'entity.too.large': {
      const size = err.length !== undefined ? `${err.length} bytes` : 'too large';
      return { status: 413, error: 'request too large', problem: `body: ${size}; at most ${BODY_LIMIT_BYTES} bytes are accepted` };
    }
    case BodyErrorType.NotUtf8:
      return { status: 400, error: 'invalid request', problem: err.message };
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return { status: 400, error: 'invalid request', problem: `body: ${err.message}; send JSON encoded as UTF-8` };
    case 'request.aborted':
    case 'request.size.invalid':
      return { status: 400, error: 'invalid request', problem: `body: ${err.message}` };
    default:
      return undefined;
  }
}

function unavailable(res: Parameters<RequestHandler>[1], problem: string): void {
  res
    .status(503)
    .set('Retry-After', String(RETRY_AFTER_SECONDS))
    .json({ error: 'Redis is unavailable', problems: [`${problem}; Phoenix reconnects on its own, try again shortly`] });
}
