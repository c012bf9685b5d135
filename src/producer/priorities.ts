import type { Config, ConfiguredModel } from '../config/index.js';
import { modelId, toStoredSpec } from '../config/model-spec.js';
import type { Logger } from '../lib/log.js';
import type { VerifiedRecord } from '../organize/record.js';
import { resolveModel } from '../sources/index.js';

/** Sources asked at once, and how long sizing may hold up the start before the rest counts as unknown. */
const CONCURRENCY = 4;
const DEADLINE_MS = 15_000;

/**
 * BullMQ priorities for this start's models (1 goes first): the models workflows need come before
 * the others, and among workflows the smallest still to download comes first, so it is complete
 * (and ready) first. A workflow's size is the bytes of its models not yet verified on disk, from
 * the sources' metadata; models whose size cannot be learned put their workflow after those whose
 * size is known. Without workflows there is no order to impose.
 */
export async function downloadPriorities(config: Config, record: VerifiedRecord, log: Logger): Promise<Map<string, number>> {
  const priorities = new Map<string, number>();
  if (config.workflows.length === 0) return priorities;
  const sizes = config.workflows.length > 1 ? await modelSizes(config, record, log) : new Map<string, number | undefined>();
  const ranked = config.workflows
    .map((w) => {
      const unknown = w.models.filter((id) => sizes.get(id) === undefined).length;
      const bytes = w.models.reduce((n, id) => n + (sizes.get(id) ?? 0), 0);
      return { w, unknown, bytes };
    })
    .sort((a, b) => a.unknown - b.unknown || a.bytes - b.bytes || a.w.name.localeCompare(b.w.name));
  ranked.forEach(({ w }, rank) => {
    for (const id of w.models) if (!priorities.has(id)) priorities.set(id, rank + 1);
  });
  for (const m of config.models) {
    const id = modelId(m.spec);
    if (!priorities.has(id)) priorities.set(id, ranked.length + 1);
  }
  log.info({ order: ranked.map((r) => ({ workflow: r.w.name, bytes: r.bytes, unknown: r.unknown })) }, 'workflows ordered smallest first');
  return priorities;
}

/** Bytes still to download per workflow model: 0 when verified on disk, undefined when unknown. */
async function modelSizes(config: Config, record: VerifiedRecord, log: Logger): Promise<Map<string, number | undefined>> {
  const wanted = new Set(config.workflows.flatMap((w) => w.models));
  const models = config.models.filter((m) => wanted.has(modelId(m.spec)));
  const sizes = new Map<string, number | undefined>();
  const signal = AbortSignal.timeout(DEADLINE_MS);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < models.length) {
      const model = models[next++]!;
      sizes.set(modelId(model.spec), await sizeOf(model, config, record, log, signal));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, models.length) }, worker));
  return sizes;
}

async function sizeOf(model: ConfiguredModel, config: Config, record: VerifiedRecord, log: Logger, signal: AbortSignal): Promise<number | undefined> {
  const id = modelId(model.spec);
  if (await record.validEntries(id)) return 0;
  if (signal.aborted) return undefined;
  try {
    const files = await resolveModel(toStoredSpec(model.spec), {
      config,
      log,
      signal,
      ...(model.spec.source === 'url' && model.spec.headers ? { secretHeaders: model.spec.headers } : {}),
    });
    return files.every((f) => f.bytes !== undefined) ? files.reduce((n, f) => n + f.bytes!, 0) : undefined;
  } catch (err) {
    log.debug({ model: id, err: (err as Error).message }, 'size unknown for ordering');
    return undefined;
  }
}
