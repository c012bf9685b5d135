import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { WAIT_POLL_MS } from './fetch-file.js';
import type { Lease, LeaseHolder, Leases } from './lease.js';

export interface VolumeTurnOptions {
  leases: Leases;
  /** The disk the models land on (see volumeId): pods on one network volume share it. */
  volume: string;
  modelId: string;
  /** Whether the model is verified in place (the record beside the models says so). */
  isPublished(): Promise<boolean>;
  onWaiting(holder: LeaseHolder): void;
  log: Logger;
  signal?: AbortSignal;
}

/** A model another pod downloaded is published by that pod's organize job this soon after. */
const PUBLISH_WAIT_MS = 5 * 60_000;

/**
 * Pods on one network volume write the same part files: one of them at a time fetches a model,
 * the others wait for it to be published and use it. Resolves with the lease when it is this
 * pod's turn (the part files of a holder that died are resumed, not restarted), `published` when
 * another pod put the model in place, or undefined when the Redis cannot be reached (the pod then
 * goes on alone).
 */
export async function takeVolumeTurn(options: VolumeTurnOptions): Promise<Lease | 'published' | undefined> {
  const { leases, log } = options;
  const name = `volume:${options.volume}:model:${options.modelId}`;
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      if (await options.isPublished()) return 'published';
      const outcome = await leases.outcome(name);
      const publishing = outcome && Date.now() - outcome.at < PUBLISH_WAIT_MS;
      if (!publishing) {
        const lease = await leases.tryAcquire(name);
        // The holder before may have finished between the looks above and now.
        const fresh = lease?.previous && Date.now() - lease.previous.at < PUBLISH_WAIT_MS;
        if (lease && (fresh || (await options.isPublished()))) await lease.release();
        else if (lease) {
          await lease.begin();
          return lease;
        }
      }
      const holder = await leases.holder(name);
      if (holder) options.onWaiting(holder);
      else if (outcome) options.onWaiting({ pod: outcome.pod, bytesDone: outcome.bytes, bytes: outcome.bytes, since: outcome.at });
      await sleep(WAIT_POLL_MS, undefined, options.signal ? { signal: options.signal } : {});
    }
  } catch (err) {
    if (options.signal?.aborted) throw err;
    log.warn({ err: errorMessage(err) }, 'the fleet\'s Redis cannot be reached: downloading without coordination');
    return undefined;
  }
}
