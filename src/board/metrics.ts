import { timingSafeEqual } from 'node:crypto';
import type { Job } from 'bullmq';
import type { RequestHandler } from 'express';
import { Counter, Gauge, Registry } from 'prom-client';
import type { PodState } from '../comfyui/pod-state.js';
import { isHealthy } from '../comfyui/process.js';
import type { Config } from '../config/index.js';
import type { PodCounters } from '../fleet/counters.js';
import type { PodRegistry } from '../fleet/registry.js';
import { QUEUE_NAMES, type DownloadProgress } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';

export interface MetricsParts {
  config: Config;
  /** The pod's own queues, state and counters; absent on a fleet board that is no pod. */
  pod?: { queues: Queues; state: PodState; counters: PodCounters };
  fleet?: PodRegistry;
}

const JOB_STATES = ['waiting', 'active', 'completed', 'failed', 'delayed', 'waiting-children'] as const;

/**
 * GET /metrics in Prometheus' text format. Every value is read at scrape time from Redis (queue
 * counts, the pod's counters, ComfyUI's state), since the workers that count run in another
 * process than the board in the image.
 */
export function createMetrics(parts: MetricsParts): Registry {
  const registry = new Registry();
  const pod = parts.pod;
  if (pod) {
    const { config } = parts;
    new Gauge({
      name: 'phoenix_pod_ready',
      help: '1 when ComfyUI runs and answers its health check',
      registers: [registry],
      async collect() {
        const comfy = await pod.state.comfy(config.comfyui.port);
        this.set(comfy.state === 'running' && (await isHealthy(config.comfyui.listen.port)) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'phoenix_queue_jobs',
      help: 'Jobs in each queue by state',
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const queue of QUEUE_NAMES) {
          const counts = await pod.queues.queue[queue].getJobCounts(...JOB_STATES);
          for (const state of JOB_STATES) this.set({ queue, state }, counts[state] ?? 0);
        }
      },
    });
    new Gauge({
      name: 'phoenix_download_bytes_per_second',
      help: 'Download throughput right now, over every active download',
      registers: [registry],
      async collect() {
        const active = await pod.queues.queue.download.getJobs(['active']);
        this.set(active.reduce((n, j: Job | undefined) => n + ((j?.progress as Partial<DownloadProgress> | undefined)?.bytesPerSecond ?? 0), 0));
      },
    });
    const counted = async () => pod.counters.read();
    new Counter({
      name: 'phoenix_download_bytes_total',
      help: 'Bytes downloaded, by model source and by where they came from (origin or mirror)',
      labelNames: ['source', 'from'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const c of (await counted()).bytes) this.inc({ source: c.source, from: c.from }, c.value);
      },
    });
    new Counter({
      name: 'phoenix_download_seconds_total',
      help: 'Seconds spent downloading, by origin or mirror (bytes / seconds = throughput)',
      labelNames: ['from'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const c of (await counted()).seconds) this.inc({ from: c.from }, c.value);
      },
    });
    new Counter({
      name: 'phoenix_verification_failures_total',
      help: 'Files whose SHA-256 was not the expected one, by origin or mirror',
      labelNames: ['from'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const c of (await counted()).verificationFailures) this.inc({ from: c.from }, c.value);
      },
    });
    new Counter({
      name: 'phoenix_comfyui_restarts_total',
      help: 'Times ComfyUI was restarted after it died',
      registers: [registry],
      async collect() {
        this.reset();
        this.inc((await pod.state.comfy(config.comfyui.port)).restarts);
      },
    });
  }
  const fleet = parts.fleet;
  if (fleet) {
    new Gauge({
      name: 'phoenix_fleet_pods',
      help: 'Pods of the fleet: live (heartbeat within 15 s) or stale',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        const pods = await fleet.list();
        this.set({ state: 'live' }, pods.filter((p) => !p.stale).length);
        this.set({ state: 'stale' }, pods.filter((p) => p.stale).length);
      },
    });
  }
  return registry;
}

export function metricsHandler(registry: Registry): RequestHandler {
  return async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  };
}

/** Serves /metrics to `Authorization: Bearer $METRICS_TOKEN`; anything else goes on to the board's login. */
export function metricsBearer(token: string | undefined, serve: RequestHandler): RequestHandler {
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
  return (req, res, next) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (expected && given.length === expected.length && timingSafeEqual(given, expected)) return serve(req, res, next);
    next();
  };
}
