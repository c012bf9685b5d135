import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { EnvSchema, foldEnvironment, scrubEnvironment } from './env.js';
import { ConfigError } from './errors.js';
import type { ModelFolder } from './folders.js';
import { createManifestFetcher, formatIssues, parseManifest, readManifestText } from './manifest.js';
import { ModelSpec, parseShortSpec } from './model-spec.js';
import { NodeSpec, nodeNameFromUrl, splitNodeUrl } from './nodes.js';

export { SECRET_VARIABLES } from './env.js';
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
  /** The home folder whose caches and shell histories PARANOID_MODE removes on exit. */
  home: string | undefined;
  provisionUrl: string | undefined;
  /** Every secret value in force, for the logger's redaction and ComfyUI's environment scrub. */
  secrets: readonly string[];
}

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
  let parsed = EnvSchema.safeParse(folded);
  if (!parsed.success) {
    problems.push(...formatIssues('', parsed.error).map((p) => p.replace(/^\./, '')));
    // Go on without the bad variables (their defaults stand in) so every other problem is found too.
    const bad = new Set(parsed.error.issues.map((i) => String(i.path[0])));
    parsed = EnvSchema.safeParse(Object.fromEntries(Object.entries(folded).filter(([k]) => !bad.has(k))));
    if (!parsed.success) throw new ConfigError(problems);
  }
  const e = parsed.data;

  const endpoints = {
    civitai: e.CIVITAI_BASE_URL,
    hf: e.HF_ENDPOINT,
    gdrive: e.GDRIVE_BASE_URL,
    gdriveUsercontent: e.GDRIVE_USERCONTENT_URL,
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
    const raw = parseShortSpec(text, endpoints);
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
      const manifest = parseManifest(text, endpoints, problems);
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
    home: e.HOME,
    provisionUrl: e.PROVISION_URL,
    secrets,
  });
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
