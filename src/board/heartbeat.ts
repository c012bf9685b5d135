import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import { HEARTBEAT_MS, type PodRecord, type PodRegistry } from '../fleet/registry.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { Queues } from '../queue/queues.js';
import { podStatus } from './status.js';

export interface HeartbeatOptions {
  config: Config;
  queues: Queues;
  pod: PodState;
  registry: PodRegistry;
  log: Logger;
  intervalMs?: number;
}

/**
 * The pod's heartbeat in the fleet registry: every few seconds, its state, GPU, version and a
 * summary of its last status. A pod that stops says so; one that dies turns stale when its alive
 * key expires.
 */
export function startHeartbeat(options: HeartbeatOptions): { stop(): Promise<void> } {
  const { config, registry, log } = options;
  const startedAt = Date.now();
  let failing = false;
  const beat = async (): Promise<void> => {
    try {
      await registry.beat(podRecord(config, await podStatus(config, options.queues, options.pod), startedAt));
      if (failing) log.info('the fleet registry is reachable again');
      failing = false;
    } catch (err) {
      if (!failing) log.warn({ err: errorMessage(err) }, 'cannot write this pod\'s heartbeat to the fleet registry');
      failing = true;
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), options.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await registry.stopped(config.fleet.podId).catch(() => undefined);
    },
  };
}

function podRecord(config: Config, status: Awaited<ReturnType<typeof podStatus>>, startedAt: number): PodRecord {
  return {
    id: config.fleet.podId,
    labels: { ...config.fleet.labels },
    queuePrefix: config.fleet.queuePrefix,
    ready: status.ready,
    comfyui: status.comfyui.state,
    models: {
      ready: status.models.filter((m) => m.state === 'ready').length,
      total: status.models.length,
      failed: status.models.filter((m) => m.state === 'failed').length,
    },
    gpus: status.gpus.map((g) => ({ name: g.name, memoryMiB: g.memoryMiB })),
    versions: { phoenix: status.versions.phoenix ?? 'unknown' },
    startedAt,
  };
}
