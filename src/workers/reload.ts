import type { Queue } from 'bullmq';
import type { ComfyProcess } from '../comfyui/process.js';
import type { Logger } from '../lib/log.js';

/** Node jobs still to come: while any is left, a restart would only have to be repeated. */
const PENDING = ['active', 'waiting', 'delayed', 'prioritized', 'waiting-children'] as const;

/**
 * ComfyUI reads custom_nodes/ only when it starts. A node installed after ComfyUI was launched
 * (COMFYUI_WAIT_FOR=none, a node or workflow added at runtime) asks for a restart; the restart
 * waits until no node job is left and happens once for all of them. Nodes installed before the
 * launch need nothing.
 */
export class NodeReloader {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The latest install the running ComfyUI has not loaded. */
  private lastInstall = 0;

  constructor(
    private readonly comfy: ComfyProcess,
    private readonly nodes: Queue,
    private readonly log: Logger,
    /** How long the nodes queue must stay empty before the restart. */
    private readonly quietMs = 1000,
  ) {}

  /** Called when a node finished installing at `finishedAt`. */
  nodeInstalled(finishedAt: number): void {
    const launched = this.comfy.launchedAt;
    if (this.stopped || launched === null || finishedAt < launched) return;
    this.lastInstall = Math.max(this.lastInstall, finishedAt);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), this.quietMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.stopped) return;
    try {
      const counts = await this.nodes.getJobCounts(...PENDING);
      if (Object.values(counts).some((n) => n > 0)) {
        this.schedule();
        return;
      }
      await this.comfy.reload('custom nodes were installed after ComfyUI started', this.lastInstall);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not restart ComfyUI for its new custom nodes');
    }
  }
}
