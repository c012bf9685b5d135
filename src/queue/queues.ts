import { FlowProducer, Queue } from 'bullmq';
import type { RedisClient } from '../lib/redis-client.js';
import { QUEUE_NAMES, type QueueName } from './jobs.js';

/** BullMQ key prefix of the pod's queues (tests use their own). */
export const DEFAULT_PREFIX = 'phoenix';

export interface Queues {
  readonly prefix: string;
  /** The connection the queues use (not closed by close()). */
  readonly connection: RedisClient;
  readonly queue: Readonly<Record<QueueName, Queue>>;
  readonly flows: FlowProducer;
  close(): Promise<void>;
}

/** The four queues and a FlowProducer over one connection (closed by the caller). */
export function openQueues(connection: RedisClient, prefix: string = DEFAULT_PREFIX): Queues {
  const queue = Object.fromEntries(
    QUEUE_NAMES.map((name) => {
      const q = new Queue(name, { connection, prefix, streams: { events: { maxLen: 1000 } } });
      // Its 'error' events are the connection's (Redis away): the connection's RedisHealth reports
      // those once; without a listener BullMQ prints every reconnect attempt to the console.
      q.on('error', () => undefined);
      return [name, q];
    }),
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
