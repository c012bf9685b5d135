import { z } from 'zod';
import { isGoogleDriveLink, type DriveEndpoints } from '../lib/gdrive.js';
import { nameProblem, shortHash, slug } from '../lib/names.js';
import { redactUrl } from '../lib/url-credentials.js';
import { isAir, isCivitaiHost, parseAir, parseCivitaiUrl, type CivitaiRef } from './civitai-ids.js';
import { normalizeFolder, type ModelFolder } from './folders.js';

/**
 * One model as a user asks for it, from any entry point (environment, TOML manifest,
 * POST /api/models). The manifest's snake_case keys (`version_id`) are accepted beside camelCase.
 */

export const Sha256 = z
  .string()
  .regex(/^[a-fA-F0-9]{64}$/, 'must be 64 hex characters')
  .transform((s) => s.toLowerCase());

/**
 * Bounds on what a request may hold: every text is kept and compared as text (ids are never turned
 * into numbers), and none grows without limit in Redis or a job id.
 */
const MAX_URL = 4096;
const MAX_ID_DIGITS = 20;

export const HttpUrl = z
  .string()
  .max(MAX_URL, `must be at most ${MAX_URL} characters`)
  .refine((u) => {
    try {
      const p = new URL(u);
      return p.protocol === 'http:' || p.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL');

/** A file or folder name; the message says which rule it breaks. */
export const PlainName = z.string().superRefine((name, ctx) => {
  const problem = nameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * A CivitAI id (model version, model, file), kept as the digits it was given. A JSON number is
 * accepted only while it is exact: past 2^53 the parser has already rounded it (9007199254740993
 * reads as …992), so it is refused rather than silently turned into another model's id.
 */
const CivitaiId = (what: string, hint = '') =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      if (typeof v === 'string') return v;
      if (Number.isSafeInteger(v) && v >= 0) return String(v);
      ctx.addIssue({
        code: 'custom',
        message: `must be sent as a string ("…"): as a JSON number it is not an exact whole number below ${Number.MAX_SAFE_INTEGER + 1} (JSON numbers past 2^53 are rounded when read)`,
      });
      return z.NEVER;
    })
    .pipe(
      z.string().superRefine((id, ctx) => {
        if (!/^\d+$/.test(id)) ctx.addIssue({ code: 'custom', message: `must be a numeric CivitAI ${what}${hint}` });
        else if (id.length > MAX_ID_DIGITS) ctx.addIssue({ code: 'custom', message: `must be a CivitAI ${what} of at most ${MAX_ID_DIGITS} digits` });
      }),
    );

const Category = z
  .string()
  .refine((c) => normalizeFolder(c) !== undefined, 'is not a ComfyUI model folder (e.g. checkpoints, loras, vae)')
  .transform((c) => normalizeFolder(c) as ModelFolder);

const RepoId = z
  .string()
  .max(200, 'must be at most 200 characters')
  .regex(/^(datasets\/|spaces\/)?[\w.-]+\/[\w.-]+$/, 'must look like "owner/repo"');

const RepoPath = z
  .string()
  .min(1)
  .max(1024, 'must be at most 1024 characters')
  .refine((p) => !p.split('/').some((s) => s === '..' || s === ''), 'must be a path inside the repository');

const common = {
  category: Category.optional(),
  filename: PlainName.optional(),
  sha256: Sha256.optional(),
  overwrite: z.boolean().optional(),
};

/**
 * A CivitAI model version, or a model's latest version when only `modelId` is known (a model page
 * URL or an AIR without `@version`). `fileId` or `file` picks one file of a multi-file version;
 * otherwise the primary file is taken.
 */
export const CivitaiSpec = z
  .strictObject({
    source: z.literal('civitai'),
    versionId: CivitaiId('model-version id', ' (or an AIR urn:air:…:civitai:<model>@<version>, or a civitai.com model URL)').optional(),
    modelId: CivitaiId('model id').optional(),
    fileId: CivitaiId('file id').optional(),
    file: z.string().min(1).max(255, 'must be at most 255 characters').optional(),
    ...common,
  })
  .refine((s) => s.versionId !== undefined || s.modelId !== undefined, {
    message: 'give a model-version id, an AIR (urn:air:…:civitai:<model>@<version>) or a civitai.com model URL',
    path: ['versionId'],
  });

/** What a whole Hugging Face repository resolves to unless `include` says otherwise: its top-level safetensors. */
export const HF_DEFAULT_INCLUDE: readonly string[] = ['*.safetensors'];

export const HuggingfaceSpec = z.strictObject({
  source: z.literal('huggingface'),
  repo: RepoId,
  file: RepoPath.optional(),
  revision: z.string().min(1).max(255, 'must be at most 255 characters').regex(/^[^\s:]+$/, 'must be a branch, tag or commit').optional(),
  include: z.array(z.string().min(1).max(255, 'must be at most 255 characters')).min(1).max(100, 'must list at most 100 patterns').optional(),
  ...common,
});

/** Header values are secrets: they stay in the process that read them and never enter Redis. */
const Headers = z.record(
  z.string().regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name'),
  z.string(),
);

export const UrlSpec = z.strictObject({
  source: z.literal('url'),
  url: HttpUrl,
  headers: Headers.optional(),
  ...common,
});

export const GdriveSpec = z.strictObject({
  source: z.literal('gdrive'),
  url: HttpUrl,
  ...common,
});

const SNAKE_TO_CAMEL: Record<string, string> = { version_id: 'versionId', model_id: 'modelId', file_id: 'fileId' };

export const ModelSpec = z.preprocess(
  (raw) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) out[SNAKE_TO_CAMEL[k] ?? k] = v;
    return out.source === 'civitai' ? expandCivitaiRef(out) : out;
  },
  z.discriminatedUnion(
    'source',
    [CivitaiSpec, HuggingfaceSpec, UrlSpec, GdriveSpec],
    { error: 'source must be one of huggingface, civitai, url, gdrive' },
  ),
);

export type ModelSpec = z.output<typeof ModelSpec>;

/** A model to provision, with the origin a user will recognise in messages. */
export interface ConfiguredModel {
  /** Where it was asked for: a manifest key, an environment variable, a workflow's node. */
  origin: string;
  spec: ModelSpec;
}
export type ModelSource = ModelSpec['source'];

/** The model as stored in job data: the spec minus header values (secrets never enter Redis). */
export const StoredModelSpec = z.discriminatedUnion('source', [
  CivitaiSpec,
  HuggingfaceSpec,
  UrlSpec.omit({ headers: true }).extend({ headerNames: z.array(z.string()).optional() }),
  GdriveSpec,
]);
export type StoredModelSpec = z.output<typeof StoredModelSpec>;

/**
 * A CivitAI spec may name its model by AIR (`air`, or in `versionId`) or by URL (`url`, or in
 * `versionId`): those become `modelId` / `versionId` / `fileId`. What does not parse is left for
 * the schema to report.
 */
function expandCivitaiRef(raw: Record<string, unknown>): Record<string, unknown> {
  const { air, url, ...rest } = raw;
  const named = [air, url, rest.versionId].find((v): v is string => typeof v === 'string' && !/^\d+$/.test(v.trim()));
  if (named === undefined) return raw;
  const { versionId: _given, ...others } = rest;
  return { ...others, ...(civitaiRefOf(named) ?? { versionId: named }) };
}

function civitaiRefOf(text: string): CivitaiRef | undefined {
  if (isAir(text)) return parseAir(text);
  try {
    return parseCivitaiUrl(new URL(text.trim()));
  } catch {
    return undefined;
  }
}

/**
 * The file name a model lands under when that is known without asking its source: `filename`,
 * else a Hugging Face file's name or a URL's last segment; undefined for CivitAI, Google Drive
 * and whole repositories. (A URL's server may still name it otherwise.)
 */
export function expectedFileName(spec: ModelSpec | StoredModelSpec): string | undefined {
  if (spec.filename) return spec.filename;
  if (spec.source === 'huggingface') return spec.file?.split('/').pop();
  if (spec.source !== 'url') return undefined;
  try {
    return decodeURIComponent(new URL(spec.url).pathname.split('/').pop() ?? '') || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Strips secret values from a spec before it is stored as job data: header values, and the
 * credentials inside a URL (shown as `***`). The worker finds the whole URL in its configuration.
 */
export function toStoredSpec(spec: ModelSpec): StoredModelSpec {
  if (spec.source === 'gdrive') return { ...spec, url: redactUrl(spec.url) };
  if (spec.source !== 'url') return spec;
  const { headers, ...rest } = spec;
  const stored = { ...rest, url: redactUrl(spec.url) };
  return headers ? { ...stored, headerNames: Object.keys(headers) } : stored;
}

/**
 * Everything that identifies what is downloaded, what it must hash to and where it lands; secrets
 * excluded. The sha256 pin is part of it: adding or changing a pin is another request, checked anew.
 */
function identity(spec: ModelSpec | StoredModelSpec): Record<string, unknown> {
  const { category, filename, sha256 } = spec;
  switch (spec.source) {
    case 'civitai':
      return { s: spec.source, v: spec.versionId, category, filename, sha256, m: spec.versionId ? undefined : spec.modelId, fid: spec.fileId, fn: spec.file };
    case 'huggingface':
      return { s: spec.source, r: spec.repo, f: spec.file, rev: spec.revision, i: spec.include, category, filename, sha256 };
    case 'url':
    case 'gdrive':
      return { s: spec.source, u: redactUrl(spec.url), category, filename, sha256 };
  }
}

/**
 * Deterministic id of a model: the same request always maps to the same jobs. A stored spec (job
 * data) has the same id as the spec it was made from, so workers derive the id from the spec they
 * are given instead of trusting an id written beside it.
 */
export function modelId(spec: ModelSpec | StoredModelSpec): string {
  const label =
    spec.source === 'civitai'
      ? spec.versionId ?? `model-${spec.modelId}`
      : spec.source === 'huggingface'
        ? (spec.file ?? spec.repo).split('/').pop()!
        : spec.filename ?? new URL(spec.url).pathname.split('/').pop() ?? 'file';
  return `${spec.source}-${slug(label, 32)}-${shortHash(JSON.stringify(identity(spec)))}`;
}

/** A human label for logs and /status before the source has resolved the real file name. */
export function describeSpec(spec: ModelSpec): string {
  switch (spec.source) {
    case 'civitai':
      return spec.versionId ? `civitai:${spec.versionId}` : `civitai:model ${spec.modelId} (latest version)`;
    case 'huggingface':
      return `${spec.repo}${spec.revision ? `@${spec.revision}` : ''}${spec.file ? `/${spec.file}` : ''}`;
    case 'url':
    case 'gdrive': {
      const u = new URL(spec.url);
      return `${u.host}${u.pathname}`;
    }
  }
}

/**
 * Parses the short forms users paste into environment variables and `phoenix add`:
 * `owner/repo[@rev][/path]`, Hugging Face resolve/blob URLs, CivitAI model-version ids,
 * Google Drive share links and plain http(s) URLs. Returns a raw spec for ModelSpec to validate.
 */
export function parseShortSpec(text: string, endpoints: SpecEndpoints): Record<string, unknown> {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { source: 'civitai', versionId: t };
  if (isAir(t)) return { source: 'civitai', versionId: t };
  if (/^https?:\/\//i.test(t)) {
    const u = new URL(t);
    if (isGoogleDriveLink(t, endpoints)) return { source: 'gdrive', url: t };
    const civitai = isCivitaiHost(u, endpoints.civitai) ? parseCivitaiUrl(u) : undefined;
    if (civitai) return { source: 'civitai', ...civitai };
    const hf = new URL(endpoints.hf);
    const m = /^\/((?:datasets\/)?[^/]+\/[^/]+)\/(?:resolve|blob)\/([^/]+)\/(.+)$/.exec(u.pathname);
    if (m && (u.host === hf.host || u.host === 'huggingface.co')) {
      return {
        source: 'huggingface',
        repo: m[1],
        revision: decodeURIComponent(m[2]!),
        file: decodeURIComponent(m[3]!),
      };
    }
    const civ = /\/api\/download\/models\/(\d+)/.exec(u.pathname) ?? /\/models\/\d+.*[?&]modelVersionId=(\d+)/.exec(t);
    if (civ) return { source: 'civitai', versionId: civ[1] };
    return { source: 'url', url: t };
  }
  const m = /^([\w.-]+\/[\w.-]+)(?:@([^/]+))?(?:\/(.+))?$/.exec(t);
  if (m) {
    return {
      source: 'huggingface',
      repo: m[1],
      ...(m[2] ? { revision: m[2] } : {}),
      ...(m[3] ? { file: m[3] } : {}),
    };
  }
  return { source: 'unknown', text: t };
}

/** The origins that decide how a pasted URL is read (Hugging Face's, CivitAI's, Google Drive's). */
export interface SpecEndpoints extends DriveEndpoints {
  hf: string;
  civitai?: string;
}
