import { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAMES, type QueueName } from './jobs.js';

/** BullMQ key prefix of the pod's queues (tests use their own). */
export const DEFAULT_PREFIX = 'phoenix';

export interface Queues {
  readonly prefix: string;
  /** The connection the queues use (not closed by close()). */
  readonly connection: Redis;
  readonly queue: Readonly<Record<QueueName, Queue>>;
  readonly flows: FlowProducer;
  close(): Promise<void>;
}

/** The four queues and a FlowProducer over one connection (closed by the caller). */
export function openQueues(connection: Redis, prefix: string = DEFAULT_PREFIX): Queues {
  const queue = Object.fromEntries(
    QUEUE_NAMES.map((name) => [
      name,
      new Queue(name, { connection, prefix, streams: { events: { maxLen: 1000 } } }),
    ]),
  ) as Record<QueueName, Queue>;
  const flows = new FlowProducer({ connection, prefix });
  return {
    prefix,
    connection,
    queue,
    flows,
    async close() {
      await Promise.all([...Object.values(queue).map((q) => q.close()), flows.close()]);
    },
  };
}
