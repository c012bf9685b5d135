import type { Job } from 'bullmq';
import type { ComfyStatus, PodState } from '../comfyui/pod-state.js';
import type { ComfyEvent } from '../comfyui/process.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import type { SendEvent } from '../queue/events.js';
import type { ModelJobData, OrganizeResult } from '../queue/jobs.js';
import type { Queues } from '../queue/queues.js';
import { workflowStatuses } from '../queue/workflow-progress.js';

/** Several jobs finishing together are looked at once. */
const SETTLE_MS = 300;

/**
 * Turns what the workers see into webhook events: a model's outcome (its organize job, which
 * runs also when the download failed for good), the service job's start of ComfyUI, ComfyUI's
 * crashes and restarts, and each workflow becoming ready (once per pod start, across processes).
 */
export class Notifier {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
    private readonly pod: PodState,
    private readonly send: SendEvent,
    private readonly log: Logger,
  ) {}

  modelReady(job: Job<ModelJobData>, result: OrganizeResult): void {
    this.send({ type: 'model.ready', model: { id: job.data.id, origin: job.data.origin, files: result.files } });
    this.workflowsMayHaveChanged();
  }

  modelFailed(job: Job<ModelJobData>, error: string): void {
    this.send({ type: 'model.failed', model: { id: job.data.id, label: job.data.label, origin: job.data.origin }, error });
    this.workflowsMayHaveChanged();
  }

  podReady(pid: number | null): void {
    this.send({ type: 'pod.ready', comfyui: { port: this.config.comfyui.port, pid } });
    this.workflowsMayHaveChanged();
  }

  comfyStatus(status: ComfyStatus): void {
    if (status.state === 'running') this.workflowsMayHaveChanged();
  }

  comfyEvent(event: ComfyEvent): void {
    if (event.type === 'crashed') {
      this.send({ type: 'comfyui.crashed', comfyui: { code: event.code, signal: event.signal, restarts: event.restarts } });
    } else {
      this.send({ type: 'comfyui.restarted', comfyui: { pid: event.pid, restarts: event.restarts, reason: event.reason } });
    }
  }

  /** After a node install, a model's outcome or a ComfyUI start: workflows may have become ready. */
  workflowsMayHaveChanged(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.checking = this.checking.then(() => this.announceReadyWorkflows());
    }, SETTLE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private async announceReadyWorkflows(): Promise<void> {
    try {
      for (const w of await workflowStatuses(this.config, this.queues, this.pod)) {
        if (w.ready && (await this.pod.announceOnce(`workflow:${w.name}`))) {
          this.send({ type: 'workflow.ready', workflow: { name: w.name, origin: w.origin, models: w.models, nodes: w.nodes } });
        }
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not check which workflows are ready');
    }
  }
}
