import { isUtf8 } from 'node:buffer';
import express, { type RequestHandler } from 'express';

/** Largest JSON body accepted: far more than a list of model specs needs. */
export const BODY_LIMIT_BYTES = 256 * 1024;
/** Deepest nesting accepted: a model spec is two levels deep, a list of them three. */
export const MAX_DEPTH = 32;

/** Error types the body readers raise; the board's error handler turns them into 4xx answers. */
export const BodyErrorType = { NotUtf8: 'body.not-utf8' } as const;

/**
 * The middleware every POST of the API reads its body through: JSON only (valid UTF-8, at most
 * BODY_LIMIT_BYTES, nested at most MAX_DEPTH deep). Each refusal is a 4xx naming the problem.
 */
export function jsonBody(): RequestHandler[] {
  return [express.json({ limit: BODY_LIMIT_BYTES, verify: requireUtf8 }), requireJsonBody, limitNesting];
}

/**
 * Checked on the raw bytes: the JSON decoder would otherwise replace bytes that are not UTF-8 with
 * U+FFFD, and a file name would silently become another one.
 */
function requireUtf8(_req: unknown, _res: unknown, buf: Buffer): void {
  if (isUtf8(buf)) return;
  throw Object.assign(new Error('body: is not valid UTF-8; send JSON encoded as UTF-8'), { status: 400, type: BodyErrorType.NotUtf8 });
}

/**
 * Every POST here takes a JSON body: one sent as another type, or none at all, is bad input
 * answered like any other (400 with the problem named), never a crash on an undefined body.
 */
const requireJsonBody: RequestHandler = (req, res, next) => {
  if (req.method !== 'POST') {
    next();
    return;
  }
  const type = req.headers['content-type'];
  const empty = !req.headers['transfer-encoding'] && Number(req.headers['content-length'] ?? 0) === 0;
  const problem = empty
    ? 'body: missing; send a JSON object'
    : !req.is('application/json')
      ? `body: must be JSON (Content-Type: application/json), not ${type ?? 'untyped'}`
      : undefined;
  if (problem) res.status(400).json({ error: 'invalid request', problems: [problem] });
  else next();
};

const limitNesting: RequestHandler = (req, res, next) => {
  const depth = nestingDepth(req.body, MAX_DEPTH + 1);
  if (depth > MAX_DEPTH) {
    res.status(400).json({ error: 'invalid request', problems: [`body: nested more than ${MAX_DEPTH} levels deep`] });
    return;
  }
  next();
};

/** How deep arrays and objects nest in `value`, counted without recursion and up to `stopAt`. */
export function nestingDepth(value: unknown, stopAt: number): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 1]];
  while (pending.length > 0) {
    const [v, depth] = pending.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest >= stopAt) return deepest;
    for (const child of Object.values(v)) pending.push([child, depth + 1]);
  }
  return deepest;
}
