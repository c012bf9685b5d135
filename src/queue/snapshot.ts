import type { JobType, Queue } from 'bullmq';

/** Every state a job can be in, as BullMQ names its keys. */
const STATES = ['active', 'wait', 'paused', 'waiting-children', 'prioritized', 'delayed', 'completed', 'failed'] as const;
export type JobSnapshotState = (typeof STATES)[number];

/** One job as /status reads it: what it is, where it stands, and what it reported. */
export interface JobSnapshot {
  id: string;
  name: string;
  state: JobSnapshotState;
  data: unknown;
  progress: unknown;
  returnvalue: unknown;
  failedReason: string | null;
}

/**
 * Every job of a queue with its state, read by one BullMQ script (ids and job hashes together, so
 * the picture is consistent and costs one round trip whatever the number of jobs). Complete: no
 * page limit, so nothing is silently cut.
 */
export async function snapshotJobs(queue: Queue): Promise<JobSnapshot[]> {
  const grouped = await queue.getBackend().getJobs([...STATES] as JobType[], 0, -1, true);
  const out: JobSnapshot[] = [];
  grouped.forEach((entries, i) => {
    const state = STATES[i]!;
    for (const [id, fields] of entries ?? []) out.push(fromFields(id, state, fields));
  });
  return out;
}

function fromFields(id: string, state: JobSnapshotState, fields: string[]): JobSnapshot {
  const raw: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) raw[fields[i]!] = fields[i + 1]!;
  return {
    id,
    name: raw.name ?? '',
    state,
    data: parse(raw.data) ?? {},
    progress: parse(raw.progress) ?? 0,
    returnvalue: parse(raw.returnvalue) ?? null,
    failedReason: raw.failedReason || null,
  };
}

function parse(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
