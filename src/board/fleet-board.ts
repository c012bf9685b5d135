import type { BaseAdapter } from '@bull-board/api/baseAdapter';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { Queue } from 'bullmq';
import type { PodRegistry } from '../fleet/registry.js';
import type { Logger } from '../lib/log.js';
import type { RedisClient } from '../lib/redis-client.js';
import type { FleetQueues } from '../queue/fleet.js';
import { QUEUE_NAMES } from '../queue/jobs.js';

/** How often the board looks for pods that joined or left. */
const REFRESH_MS = 10_000;

/**
 * Bull Board over every pod's queues (`<pod>/download`, …, grouped by pod) and the fleet's own,
 * kept in step with the pod registry. One Queue object per pod queue, all over one connection.
 */
export class FleetBoardQueues {
  private readonly queues = new Map<string, Queue>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: RedisClient,
    private readonly registry: PodRegistry,
    private readonly fleet: FleetQueues,
    private readonly log: Logger,
  ) {}

  /** Shows the pods known now and keeps the list fresh through `show`. */
  async start(show: (adapters: readonly BaseAdapter[]) => void): Promise<void> {
    const refresh = async (): Promise<void> => {
      try {
        show(await this.adapters());
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot list the fleet\'s pods for the board');
      }
    };
    await refresh();
    this.timer = setInterval(() => void refresh(), REFRESH_MS);
    this.timer.unref();
  }

  async adapters(): Promise<BaseAdapter[]> {
    const adapters: BaseAdapter[] = [new BullMQAdapter(this.fleet.fleet, { prefix: 'fleet/', delimiter: '/', readOnlyMode: true })];
    for (const pod of await this.registry.list()) {
      for (const name of QUEUE_NAMES) {
        const key = `${pod.queuePrefix}:${name}`;
        let queue = this.queues.get(key);
        if (!queue) {
          queue = new Queue(name, { connection: this.connection, prefix: pod.queuePrefix });
          this.queues.set(key, queue);
        }
        adapters.push(new BullMQAdapter(queue, { prefix: `${pod.id}/`, delimiter: '/', readOnlyMode: true }));
      }
    }
    return adapters;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
