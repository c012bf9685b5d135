import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import type { Logger, Redactor } from '../lib/log.js';
import { JobName, type WebhookJobData } from './jobs.js';

/** What PHOENIX_WEBHOOK_URL is told. Each carries facts a user can act on, never a secret. */
export type PhoenixEvent =
  | {
      type: 'model.ready';
      model: { id: string; origin: string; files: { name: string; category: string; path: string; bytes: number; sha256: string }[] };
    }
  | { type: 'model.failed'; model: { id: string; label: string; origin: string }; error: string }
  | { type: 'workflow.ready'; workflow: { name: string; origin: string; models: string[]; nodes: string[] } }
  | { type: 'pod.ready'; comfyui: { port: number; pid: number | null } }
  | { type: 'comfyui.crashed'; comfyui: { code: number | null; signal: string | null; restarts: number } }
  | { type: 'comfyui.restarted'; comfyui: { pid: number | null; restarts: number; reason: string } };

/** Sends an event without waiting: delivery (and its retries) happens on the webhooks queue. */
export type SendEvent = (event: PhoenixEvent) => void;

/** Deliveries retry with backoff for about ten minutes before they are given up. */
const DELIVERY = { attempts: 10, backoff: { type: 'phoenix' }, removeOnComplete: { count: 500 }, removeOnFail: { count: 1000 }, keepLogs: 20 };

/**
 * The event sender of a process. Without PHOENIX_WEBHOOK_URL it sends nothing. The body is
 * written once here (so every attempt signs the same bytes) and scrubbed of secret values; a
 * failure to enqueue is logged, never thrown: provisioning does not wait on notifications.
 */
export function eventSender(queue: Queue | undefined, redactor: Redactor, log: Logger): SendEvent {
  if (!queue) return () => undefined;
  return (event) => {
    const id = randomUUID();
    const body = redactor.redact(JSON.stringify({ id, at: new Date().toISOString(), host: hostname(), ...event }));
    const data: WebhookJobData = { event: event.type, body };
    queue.add(JobName.DeliverWebhook, data, { ...DELIVERY, jobId: `webhook-${id}` }).catch((err: Error) => {
      log.warn({ event: event.type, err: err.message }, 'could not queue a webhook event');
    });
  };
}
