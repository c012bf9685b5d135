import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { createManifestFetcher } from '../sources/gdrive.js';
import { ConfigError } from './errors.js';
import { formatIssues, parseManifest, readManifestText } from './manifest.js';
import { ModelSpec, parseShortSpec, type SpecEndpoints } from './model-spec.js';
import { NodeSpec, nodeNameFromUrl, splitNodeUrl } from './nodes.js';
import type { ModelFolder } from './folders.js';

export { ConfigError } from './errors.js';

/** A model to provision, with the origin a user will recognise in messages. */
export interface ConfiguredModel {
  /** Where it was asked for: a manifest key or an environment variable. */
  origin: string;
  spec: ModelSpec;
}

export interface Config {
  workspace: string;
  /** Phoenix's own state (Redis socket, AOF, logs) under the workspace. */
  stateDir: string;
  comfyui: {
    dir: string;
    python: string;
    port: number;
    args: readonly string[];
    waitFor: 'all' | 'nodes' | 'none';
    /** ComfyUI's environment: the pod's, with every secret removed. */
    env: Readonly<Record<string, string>>;
  };
  server: { port: number; username: string; password: string; passwordGenerated: boolean };
  filebrowser: { port: number; username: string; password: string; passwordGenerated: boolean };
  redisUrl: string | undefined;
  /** Persistent model storage, or undefined when models live in the ComfyUI checkout. */
  persistentStorage: string | undefined;
  /** Root of the model folders (`<root>/checkpoints`, `<root>/loras`, …). */
  modelsRoot: string;
  tokens: { civitai: string | undefined; hf: string | undefined };
  /** RunPod's API, for `phoenix template --deploy`. */
  runpod: { apiKey: string | undefined; baseUrl: string };
  endpoints: { civitai: string; hf: string; gdrive: string; gdriveUsercontent: string };
  models: readonly ConfiguredModel[];
  nodes: readonly NodeSpec[];
  extraPythonPackages: readonly string[];
  download: { concurrency: number; connections: number; stallTimeoutMs: number; attempts: number };
  debug: boolean;
  paranoid: boolean;
  provisionUrl: string | undefined;
  /** Every secret value in force, for the logger's redaction and ComfyUI's environment scrub. */
  secrets: readonly string[];
}

/** Variables whose values are secrets: never logged, never passed to ComfyUI. */
export const SECRET_VARIABLES = [
  'CIVITAI_TOKEN',
  'HF_TOKEN',
  'HUGGINGFACE_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'PHOENIX_PASSWORD',
  'FB_PASSWORD',
  'FILEBROWSER_PASSWORD',
  'RUNPOD_API_KEY',
  'REDIS_URL',
] as const;

const bool = z
  .string()
  .regex(/^(true|false|1|0|yes|no|on|off)$/i, 'must be true or false')
  .transform((v) => /^(true|1|yes|on)$/i.test(v));

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const list = z.string().transform((v) =>
  v
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean),
);

const urlVar = z
  .string()
  .regex(/^https?:\/\/[^\s]+$/i, 'must be an http(s) URL')
  .transform((u) => u.replace(/\/+$/, ''));

/** The environment, after aliases and `<NAME>_FILE` secrets are folded in. */
const EnvSchema = z.object({
  WORKSPACE: z.string().min(1).default('/workspace'),
  COMFYUI_DIR: z.string().min(1).optional(),
  COMFYUI_PYTHON: z.string().min(1).default('python3'),
  COMFYUI_PORT: int(1, 65535).default(8188),
  COMFY_ARGS: z.string().default(''),
  COMFYUI_WAIT_FOR: z.enum(['all', 'nodes', 'none'], { error: 'must be all, nodes or none' }).default('all'),
  PHOENIX_PORT: int(1, 65535).default(8189),
  PHOENIX_USERNAME: z.string().min(1).default('admin'),
  PHOENIX_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
  FB_USERNAME: z.string().min(1).default('admin'),
  FB_PASSWORD: z.string().min(12, 'must be at least 12 characters (FileBrowser refuses shorter ones)').optional(),
  FILEBROWSER_PORT: int(1, 65535).default(8080),
  REDIS_URL: z.string().regex(/^(redis|rediss|unix):\/\//, 'must be a redis://, rediss:// or unix:// URL').optional(),
  PERSISTENT_STORAGE: z.string().min(1).default('none'),
  USE_VOLUME: bool.default(false),
  CIVITAI_TOKEN: z.string().min(1).optional(),
  HF_TOKEN: z.string().min(1).optional(),
  CIVITAI_BASE_URL: urlVar.default('https://civitai.com'),
  HF_ENDPOINT: urlVar.default('https://huggingface.co'),
  GDRIVE_BASE_URL: urlVar.default('https://drive.google.com'),
  GDRIVE_USERCONTENT_URL: urlVar.default('https://drive.usercontent.google.com'),
  RUNPOD_API_KEY: z.string().min(1).optional(),
  RUNPOD_API_BASE_URL: urlVar.default('https://api.runpod.io'),
  CIVITAI_MODELS: list.default([]),
  CIVITAI_CHECKPOINTS_TO_DOWNLOAD: list.default([]),
  CIVITAI_LORAS_TO_DOWNLOAD: list.default([]),
  CIVITAI_VAES_TO_DOWNLOAD: list.default([]),
  CIVITAI_EMBEDDINGS_TO_DOWNLOAD: list.default([]),
  CIVITAI_CONTROLNETS_TO_DOWNLOAD: list.default([]),
  CIVITAI_UPSCALERS_TO_DOWNLOAD: list.default([]),
  HUGGINGFACE_MODELS: list.default([]),
  PROVISION_URL: z.string().min(1).optional(),
  COMFY_CUSTOM_NODE_GIT_URLS: list.default([]),
  EXTRA_PYTHON_PACKAGES: z.string().default(''),
  DOWNLOAD_CONCURRENCY: int(1, 32).default(3),
  DOWNLOAD_CONNECTIONS: int(1, 64).default(8),
  DOWNLOAD_STALL_TIMEOUT: int(1, 3600).default(60),
  DOWNLOAD_ATTEMPTS: int(1, 50).default(5),
  DEBUG_MODE: bool.default(false),
  PARANOID_MODE: bool.default(false),
});

/** Older templates' names, folded into the canonical variable when that one is unset. */
const ALIASES: Record<string, string> = {
  FILEBROWSER_PASSWORD: 'FB_PASSWORD',
  HUGGINGFACE_TOKEN: 'HF_TOKEN',
  HF_REPOS_TO_DOWNLOAD: 'HUGGINGFACE_MODELS',
  MODELS_MANIFEST: 'PROVISION_URL',
};

const FILE_SECRETS = ['CIVITAI_TOKEN', 'HF_TOKEN', 'PHOENIX_PASSWORD', 'FB_PASSWORD'];

const CIVITAI_FORCED: Record<string, ModelFolder> = {
  CIVITAI_CHECKPOINTS_TO_DOWNLOAD: 'checkpoints',
  CIVITAI_LORAS_TO_DOWNLOAD: 'loras',
  CIVITAI_VAES_TO_DOWNLOAD: 'vae',
  CIVITAI_EMBEDDINGS_TO_DOWNLOAD: 'embeddings',
  CIVITAI_CONTROLNETS_TO_DOWNLOAD: 'controlnet',
  CIVITAI_UPSCALERS_TO_DOWNLOAD: 'upscale_models',
};

export interface LoadOptions {
  /** Fetches PROVISION_URL when it is a URL; defaults to a GET that follows Google Drive's confirm flow. */
  fetchText?: (url: string) => Promise<string>;
}

/**
 * Reads and validates the whole configuration once. Throws ConfigError listing every problem.
 * The result is deeply frozen: pass it in, never read process.env elsewhere.
 */
export async function loadConfig(env: NodeJS.ProcessEnv, options: LoadOptions = {}): Promise<Config> {
  const problems: string[] = [];
  const folded = foldEnvironment(env, problems);
  const parsed = EnvSchema.safeParse(folded);
  if (!parsed.success) {
    problems.push(...formatIssues('', parsed.error).map((p) => p.replace(/^\./, '')));
    throw new ConfigError(problems);
  }
  const e = parsed.data;

  const endpoints = {
    civitai: e.CIVITAI_BASE_URL,
    hf: e.HF_ENDPOINT,
    gdrive: e.GDRIVE_BASE_URL,
    gdriveUsercontent: e.GDRIVE_USERCONTENT_URL,
  };
  const specEndpoints: SpecEndpoints = {
    hf: endpoints.hf,
    driveHosts: [...new Set([new URL(endpoints.gdrive).host, new URL(endpoints.gdriveUsercontent).host, 'drive.google.com', 'docs.google.com'])],
  };

  const models: ConfiguredModel[] = [];
  const addModel = (origin: string, raw: Record<string, unknown>): void => {
    const r = ModelSpec.safeParse(raw);
    if (r.success) models.push({ origin, spec: r.data });
    else problems.push(...formatIssues(origin, r.error));
  };

  e.CIVITAI_MODELS.forEach((id, i) => addModel(`CIVITAI_MODELS[${i}]`, { source: 'civitai', versionId: id }));
  for (const [variable, folder] of Object.entries(CIVITAI_FORCED)) {
    (e[variable as keyof typeof e] as string[]).forEach((id, i) =>
      addModel(`${variable}[${i}]`, { source: 'civitai', versionId: id, category: folder }),
    );
  }
  e.HUGGINGFACE_MODELS.forEach((text, i) => {
    const raw = parseShortSpec(text, specEndpoints);
    if (raw.source === 'unknown') problems.push(`HUGGINGFACE_MODELS[${i}]: "${text}" is not owner/repo[@rev][/path] or a Hugging Face URL`);
    else addModel(`HUGGINGFACE_MODELS[${i}]`, raw);
  });

  const nodes: NodeSpec[] = [];
  e.COMFY_CUSTOM_NODE_GIT_URLS.forEach((text, i) => {
    const { url, ref } = splitNodeUrl(text);
    const r = NodeSpec.safeParse({ name: nodeNameFromUrl(url), url, ...(ref ? { ref } : {}) });
    if (r.success) nodes.push(r.data);
    else problems.push(...formatIssues(`COMFY_CUSTOM_NODE_GIT_URLS[${i}]`, r.error));
  });

  if (e.PROVISION_URL) {
    const fetchText = options.fetchText ?? createManifestFetcher(endpoints);
    try {
      const text = await readManifestText(e.PROVISION_URL, fetchText);
      const manifest = parseManifest(text, specEndpoints, problems);
      models.push(...manifest.models.map((m) => ({ origin: `manifest ${m.key}`, spec: m.spec })));
      nodes.push(...manifest.nodes);
    } catch (err) {
      problems.push(`PROVISION_URL: cannot read the manifest: ${(err as Error).message}`);
    }
  }

  const seenNodes = new Set<string>();
  for (const n of nodes) {
    if (seenNodes.has(n.name)) problems.push(`custom node "${n.name}": asked for twice (two repositories cannot share custom_nodes/${n.name})`);
    seenNodes.add(n.name);
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const workspace = path.resolve(e.WORKSPACE);
  const comfyDir = path.resolve(e.COMFYUI_DIR ?? path.join(workspace, 'ComfyUI'));
  const persistentStorage =
    e.PERSISTENT_STORAGE !== 'none'
      ? path.resolve(e.PERSISTENT_STORAGE)
      : e.USE_VOLUME
        ? path.join(workspace, 'storage')
        : undefined;
  const password = e.PHOENIX_PASSWORD ?? generatePassword();
  const fbPassword = e.FB_PASSWORD ?? generatePassword();
  const headerSecrets = models.flatMap((m) => (m.spec.source === 'url' && m.spec.headers ? Object.values(m.spec.headers) : []));
  const secrets = [e.CIVITAI_TOKEN, e.HF_TOKEN, e.RUNPOD_API_KEY, password, fbPassword, ...headerSecrets, ...redisPassword(e.REDIS_URL)].filter(
    (s): s is string => typeof s === 'string' && s.length >= 4,
  );

  return deepFreeze<Config>({
    workspace,
    stateDir: path.join(workspace, '.phoenix'),
    comfyui: {
      dir: comfyDir,
      python: e.COMFYUI_PYTHON,
      port: e.COMFYUI_PORT,
      args: splitArgs(e.COMFY_ARGS),
      waitFor: e.COMFYUI_WAIT_FOR,
      env: scrubEnvironment(env, secrets),
    },
    server: { port: e.PHOENIX_PORT, username: e.PHOENIX_USERNAME, password, passwordGenerated: !e.PHOENIX_PASSWORD },
    filebrowser: { port: e.FILEBROWSER_PORT, username: e.FB_USERNAME, password: fbPassword, passwordGenerated: !e.FB_PASSWORD },
    redisUrl: e.REDIS_URL,
    persistentStorage,
    modelsRoot: persistentStorage ? path.join(persistentStorage, 'models') : path.join(comfyDir, 'models'),
    tokens: { civitai: e.CIVITAI_TOKEN, hf: e.HF_TOKEN },
    runpod: { apiKey: e.RUNPOD_API_KEY, baseUrl: e.RUNPOD_API_BASE_URL },
    endpoints,
    models,
    nodes,
    extraPythonPackages: splitArgs(e.EXTRA_PYTHON_PACKAGES),
    download: {
      concurrency: e.DOWNLOAD_CONCURRENCY,
      connections: e.DOWNLOAD_CONNECTIONS,
      stallTimeoutMs: e.DOWNLOAD_STALL_TIMEOUT * 1000,
      attempts: e.DOWNLOAD_ATTEMPTS,
    },
    debug: e.DEBUG_MODE,
    paranoid: e.PARANOID_MODE,
    provisionUrl: e.PROVISION_URL,
    secrets,
  });
}

/** Applies aliases and `<NAME>_FILE`; keeps only non-empty values so defaults apply to blanks. */
function foldEnvironment(env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') out[k] = v.trim();
  for (const [alias, canonical] of Object.entries(ALIASES)) {
    if (out[alias] !== undefined && out[canonical] === undefined) out[canonical] = out[alias]!;
  }
  for (const name of FILE_SECRETS) {
    const file = out[`${name}_FILE`];
    if (file === undefined || out[name] !== undefined) continue;
    try {
      out[name] = readFileSync(file, 'utf8').trim();
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return out;
}

const SECRET_NAME = /(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY)(_FILE)?$/i;

/** The environment minus secret variables (by name and by value) and Phoenix's own settings. */
function scrubEnvironment(env: NodeJS.ProcessEnv, secrets: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if ((SECRET_VARIABLES as readonly string[]).includes(k.replace(/_FILE$/, '')) || SECRET_NAME.test(k)) continue;
    if (k === 'PROVISION_URL' || k === 'MODELS_MANIFEST' || k === 'REDIS_URL') continue;
    if (secrets.some((s) => v.includes(s))) continue;
    out[k] = v;
  }
  return out;
}

function splitArgs(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}

function redisPassword(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const u = new URL(url);
    return [u.password, url].filter(Boolean);
  } catch {
    return [];
  }
}

function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
