import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { ConfiguredModel } from '../config/index.js';
import { ModelSpec, modelId } from '../config/model-spec.js';
import { NodeSpec } from '../config/nodes.js';
import { isMissing, writeFileAtomically } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import { KeyedMutex } from '../lib/serial.js';

/** The file, in the state folder, that remembers what was added at runtime. */
export const ADDITIONS_FILE = 'runtime-additions.json';

const AdditionsFile = z.object({
  version: z.literal(1),
  /** Each model's id beside its spec, so an addition is checked against the others without parsing them. */
  models: z.array(z.object({ id: z.string(), spec: z.unknown() })),
  nodes: z.array(z.unknown()),
});

export interface Additions {
  models: ConfiguredModel[];
  nodes: NodeSpec[];
}

/** Writes of the file one at a time in this process, so concurrent additions never lose each other. */
const writes = new KeyedMutex();

/**
 * Models and nodes added through the API, remembered beside Phoenix's other state so that a Redis
 * that comes back empty (no persistence, a new external Redis) and every later start provision
 * them again. Only specs are kept: the API refuses header values, and an entry that holds a secret
 * value anyway (a token pasted into a URL) is not written.
 */
export class RuntimeAdditions {
  private readonly file: string;

  constructor(
    stateDir: string,
    private readonly secrets: readonly string[],
    private readonly log?: Logger,
  ) {
    this.file = path.join(stateDir, ADDITIONS_FILE);
  }

  /** What was added so far; entries this version cannot read are skipped with a warning. */
  async load(): Promise<Additions> {
    const raw = await this.read();
    const models: ConfiguredModel[] = [];
    const nodes: NodeSpec[] = [];
    for (const { spec: entry } of raw.models) {
      const parsed = ModelSpec.safeParse(entry);
      if (parsed.success) models.push({ origin: 'api', spec: parsed.data });
      else this.log?.warn({ file: this.file, entry }, 'a remembered runtime model is not valid any more; skipped');
    }
    for (const entry of raw.nodes) {
      const parsed = NodeSpec.safeParse(entry);
      if (parsed.success) nodes.push(parsed.data);
      else this.log?.warn({ file: this.file, entry }, 'a remembered runtime node is not valid any more; skipped');
    }
    return { models, nodes };
  }

  async addModels(models: readonly ConfiguredModel[]): Promise<void> {
    const keep = models.filter((m) => this.storable(m.spec));
    if (keep.length === 0) return;
    await this.update((data) => {
      const known = new Set(data.models.map((m) => m.id));
      for (const m of keep) {
        const id = modelId(m.spec);
        if (!known.has(id)) data.models.push({ id, spec: m.spec });
        known.add(id);
      }
    });
  }

  async addNode(node: NodeSpec): Promise<void> {
    if (!this.storable(node)) return;
    await this.update((data) => {
      if (!data.nodes.some((n) => JSON.stringify(n) === JSON.stringify(node))) data.nodes.push(node);
    });
  }

  private storable(value: unknown): boolean {
    const text = JSON.stringify(value);
    if (!this.secrets.some((s) => text.includes(s))) return true;
    this.log?.warn('a runtime addition holds a secret value and is not remembered on disk; after a Redis loss, add it again');
    return false;
  }

  private async read(): Promise<z.output<typeof AdditionsFile>> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if (isMissing(err)) return { version: 1, models: [], nodes: [] };
      throw err;
    }
    const parsed = AdditionsFile.safeParse(safeJson(text));
    if (parsed.success) return parsed.data;
    const aside = `${this.file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(this.file, aside).catch(() => undefined);
    this.log?.warn({ file: this.file, keptAs: aside }, 'the record of runtime additions was damaged and is kept aside; add those models again');
    return { version: 1, models: [], nodes: [] };
  }

  private update(change: (data: z.output<typeof AdditionsFile>) => void): Promise<void> {
    return writes.run(this.file, async () => {
      const data = await this.read();
      change(data);
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      await writeFileAtomically(this.file, JSON.stringify(data, null, 1));
    });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
