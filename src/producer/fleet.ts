import { randomBytes } from 'node:crypto';
import type { ConfiguredModel } from '../config/index.js';
import { toStoredSpec } from '../config/model-spec.js';
import { FleetJobName, FleetQueueName, inboxQueueName, type FleetModelsData, type FleetQueues, type PodModelsData } from '../queue/fleet.js';

export interface FleetAddition {
  /** The fleet job's id (GET /api/fleet/jobs/:id). */
  id: string;
  pods: string[];
}

/** Jobs of fleet additions are kept for a while to be looked at, then dropped. */
const KEEP = { removeOnComplete: { count: 500 }, removeOnFail: { count: 500 }, keepLogs: 100 };

/**
 * A fleet-wide addition: one flow, the parent in the fleet queue, a child per pod in its inbox.
 * The parent completes once every pod has its models ready or failed; a pod whose child fails for
 * good (a pod that went away) is reported, not waited for.
 */
export async function enqueueFleetModels(queues: FleetQueues, models: readonly ConfiguredModel[], pods: readonly string[]): Promise<FleetAddition> {
  const id = `fleet-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const stored: PodModelsData['models'] = models.map((m) => ({ origin: m.origin, spec: toStoredSpec(m.spec) }));
  const data: FleetModelsData = { models: stored, pods: [...pods] };
  await queues.flows.add({
    name: FleetJobName.AddModels,
    queueName: FleetQueueName.Fleet,
    data,
    opts: { ...KEEP, jobId: id },
    children: pods.map((pod) => ({
      name: FleetJobName.PodAddModels,
      queueName: inboxQueueName(pod),
      data: { models: stored } satisfies PodModelsData,
      opts: { ...KEEP, jobId: `${id}-${pod}`, ignoreDependencyOnFailure: true, attempts: 3, backoff: { type: 'exponential', delay: 2000 } },
    })),
  });
  return { id, pods: [...pods] };
}
