import { FlowProducer, Queue } from 'bullmq';
import { z } from 'zod';
import { StoredModelSpec } from '../config/model-spec.js';
import type { RedisClient } from '../lib/redis-client.js';

/**
 * The fleet's own queues, beside each pod's four. A fleet-wide addition is one BullMQ flow: a
 * parent in `fleet` and a child per pod in that pod's `inbox-<pod>` queue. Every queue of the
 * flow shares the fleet's prefix, one hash tag, because BullMQ adds a flow in one atomic script
 * and a Redis Cluster runs a script only over keys of one slot. Each pod's inbox worker then
 * enqueues the models into the pod's own queues (under the pod's own hash tag).
 */
export const FleetQueueName = { Fleet: 'fleet' } as const;

export function inboxQueueName(podId: string): string {
  return `inbox-${podId}`;
}

export const FleetJobName = {
  AddModels: 'fleet-add-models',
  PodAddModels: 'pod-add-models',
} as const;

const FleetModel = z.object({ origin: z.string(), spec: StoredModelSpec });

export const PodModelsData = z.object({ models: z.array(FleetModel).min(1) });
export type PodModelsData = z.output<typeof PodModelsData>;

export const FleetModelsData = PodModelsData.extend({ pods: z.array(z.string()).min(1) });
export type FleetModelsData = z.output<typeof FleetModelsData>;

/** What a pod's inbox job reports once its models are ready or failed. */
export interface PodModelsResult {
  pod: string;
  models: { id: string; state: 'ready' | 'failed'; error: string | null }[];
}

/** What the fleet job reports: every pod's result, and the pods whose inbox job failed for good. */
export interface FleetModelsResult {
  pods: PodModelsResult[];
  failed: Record<string, string>;
}

export interface FleetQueues {
  readonly prefix: string;
  readonly fleet: Queue;
  readonly flows: FlowProducer;
  inbox(podId: string): Queue;
  close(): Promise<void>;
}

/** The fleet queue, the pods' inboxes (opened on demand) and a FlowProducer, over one connection. */
export function openFleetQueues(connection: RedisClient, prefix: string): FleetQueues {
  const options = { connection, prefix, streams: { events: { maxLen: 1000 } } };
  const fleet = new Queue(FleetQueueName.Fleet, options);
  const inboxes = new Map<string, Queue>();
  const flows = new FlowProducer({ connection, prefix });
  return {
    prefix,
    fleet,
    flows,
    inbox(podId) {
      let queue = inboxes.get(podId);
      if (!queue) {
        queue = new Queue(inboxQueueName(podId), options);
        inboxes.set(podId, queue);
      }
      return queue;
    },
    async close() {
      await Promise.all([fleet.close(), flows.close(), ...[...inboxes.values()].map((q) => q.close())]);
    },
  };
}
