import { createHmac } from 'node:crypto';
import { TransientError, UserError } from '../lib/errors.js';
import { USER_AGENT, retryAfterMs } from '../lib/http.js';
import type { JobName } from '../queue/jobs.js';
import type { Handler } from './context.js';

/**
 * webhooks: POSTs one event to PHOENIX_WEBHOOK_URL, signed with PHOENIX_WEBHOOK_SECRET:
 * `X-Phoenix-Signature: sha256=<hex HMAC-SHA256 of the body>`. A receiver that is down, slow or
 * answers 5xx/429 gets the same bytes again with backoff; one that refuses (4xx) or redirects is
 * misconfigured, and retrying cannot help. Messages name the receiver's origin only: the URL's
 * path may be the secret part.
 */
export const deliverWebhook: Handler<typeof JobName.DeliverWebhook> = async (job, { body, event }, deps) => {
  const hook = deps.config.webhook;
  if (!hook) throw new UserError('PHOENIX_WEBHOOK_URL is not set for the workers: the event is dropped');
  const origin = new URL(hook.url).origin;
  const signature = createHmac('sha256', hook.secret).update(body).digest('hex');
  let response: Response;
  try {
    response = await fetch(hook.url, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
      headers: {
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        'x-phoenix-event': event,
        'x-phoenix-delivery': String(job.id),
        'x-phoenix-signature': `sha256=${signature}`,
      },
      body,
    });
  } catch (err) {
    throw new TransientError(`webhook receiver ${origin} did not answer: ${(err as Error).name === 'TimeoutError' ? 'timed out' : (err as Error).message}`);
  }
  await response.body?.cancel();
  const status = response.status;
  if (status >= 200 && status < 300) return { status };
  if (status === 408 || status === 429 || status >= 500) {
    throw new TransientError(`webhook receiver ${origin} answered HTTP ${status}`, { retryAfterMs: retryAfterMs(response) });
  }
  if (status >= 300 && status < 400) throw new UserError(`webhook receiver ${origin} answered a redirect (HTTP ${status}): set PHOENIX_WEBHOOK_URL to the final URL`);
  throw new UserError(`webhook receiver ${origin} refused the event (HTTP ${status}): check PHOENIX_WEBHOOK_URL`);
};
