import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { z } from 'zod';
import { urlSecrets } from '../lib/url-credentials.js';
import { accessProblems, comfyListen, type ComfyListen } from './access.js';
import { EnvSchema, foldEnvironment, scrubEnvironment } from './env.js';
import { ConfigError } from './errors.js';
import { fleetConfig, mirrorConfig, redisCluster, type FleetConfig, type MirrorConfig, type RedisNode } from './fleet.js';
import type { ModelFolder } from './folders.js';
import { hostPatternProblems, normalizeHost } from './host-pattern.js';
import { createManifestFetcher, formatIssues, parseManifest, readManifestText } from './manifest.js';
import { ModelSpec, parseShortSpec, type ConfiguredModel, type SpecEndpoints } from './model-spec.js';
import { nodeNameFromUrl, parseNodeSpec, splitNodeUrl, splitRegistryNode, type NodeSpec } from './nodes.js';
import { readWorkflowSource, sourcesFromLocations, type WorkflowSource } from './workflow-load.js';
import { WorkflowCatalog, type WorkflowRecord } from './workflows.js';

export type { ComfyListen } from './access.js';
export { SECRET_VARIABLES } from './env.js';
export { ConfigError } from './errors.js';
export type { ConfiguredModel } from './model-spec.js';
export type { WorkflowRecord } from './workflows.js';
export type { FleetConfig, MirrorConfig, RedisNode } from './fleet.js';

export interface Config {
  workspace: string;
  /** Phoenix's own state (Redis socket, AOF, logs) under the workspace. */
  stateDir: string;
  comfyui: {
    dir: string;
    python: string;
    /** The public port: Phoenix's login proxy with auth on, ComfyUI itself with auth off. */
    port: number;
    /** `on`: COMFYUI_PORT asks for Phoenix's login; `off`: it is ComfyUI, open to whoever reaches it. */
    auth: 'on' | 'off';
    /** Where ComfyUI itself listens. */
    listen: ComfyListen;
    args: readonly string[];
    waitFor: 'all' | 'nodes' | 'none';
    /** COMFYUI_USER: the user ComfyUI, git, pip, install.py and custom nodes run as; undefined: Phoenix's own. */
    user: string | undefined;
    /** ComfyUI's environment: the pod's, with every secret removed. */
    env: Readonly<Record<string, string>>;
  };
  privacy: PrivacyConfig;
  server: {
    port: number;
    username: string;
    password: string;
    passwordGenerated: boolean;
    /** Bearer token for scripts (PHOENIX_API_TOKEN), generated when unset. */
    apiToken: string;
    apiTokenGenerated: boolean;
    /** Peers whose X-Forwarded-For is believed (proxy-addr names, addresses, CIDR ranges). */
    trustedProxies: readonly string[];
  };
  filebrowser: { port: number; username: string; password: string; passwordGenerated: boolean };
  redisUrl: string | undefined;
  /** Nodes of a Redis Cluster (REDIS_CLUSTER); REDIS_URL then gives only the password and TLS. */
  redisCluster: readonly RedisNode[] | undefined;
  /** This pod's id, labels and place in a fleet (one Redis and one mirror for many pods). */
  fleet: FleetConfig;
  /** The S3-compatible model mirror, or undefined. */
  mirror: MirrorConfig | undefined;
  /** Bearer token for GET /metrics besides the board's login. */
  metricsToken: string | undefined;
  /** Persistent model storage, or undefined when models live in the ComfyUI checkout. */
  persistentStorage: string | undefined;
  /** Root of the model folders (`<root>/checkpoints`, `<root>/loras`, …). */
  modelsRoot: string;
  tokens: { civitai: string | undefined; hf: string | undefined };
  /** RunPod's API, for `phoenix template --deploy`. */
  runpod: { apiKey: string | undefined; baseUrl: string; podId: string | undefined };
  endpoints: { civitai: string; hf: string; gdrive: string; gdriveUsercontent: string; registry: string; github: string };
  /** Every model: environment, manifest, then what workflows add (each file once). */
  models: readonly ConfiguredModel[];
  /** Every custom node: environment, manifest, then the packs workflows name (each folder once). */
  nodes: readonly NodeSpec[];
  /** PROVISION_WORKFLOWS and the manifest's [workflows.…], with the models and nodes each needs. */
  workflows: readonly WorkflowRecord[];
  /** PHOENIX_WEBHOOK_URL and the secret its events are signed with. */
  webhook: { url: string; secret: string } | undefined;
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

/** PRIVACY_* and BLOCK_*: what ComfyUI's side of the pod may reach (see src/privacy). */
export interface PrivacyConfig {
  enabled: boolean;
  blockTelemetry: boolean;
  blockAiServices: boolean;
  /** Record and report every connection, block none. */
  monitoringOnly: boolean;
  /** DOWNLOAD_GRACE_PERIOD: how long after the last download or node install ends hosts stay open. */
  graceMs: number;
  /** Host patterns, normalized (see config/host-pattern). */
  allow: readonly string[];
  deny: readonly string[];
}

/** Variables whose CivitAI versions go to a fixed folder, whatever the model's type says. */
const CIVITAI_FORCED = [
  ['CIVITAI_CHECKPOINTS_TO_DOWNLOAD', 'checkpoints'],
  ['CIVITAI_LORAS_TO_DOWNLOAD', 'loras'],
  ['CIVITAI_VAES_TO_DOWNLOAD', 'vae'],
  ['CIVITAI_EMBEDDINGS_TO_DOWNLOAD', 'embeddings'],
  ['CIVITAI_CONTROLNETS_TO_DOWNLOAD', 'controlnet'],
  ['CIVITAI_UPSCALERS_TO_DOWNLOAD', 'upscale_models'],
] as const satisfies readonly (readonly [string, ModelFolder])[];

export interface LoadOptions {
  /** Fetches PROVISION_URL and workflow URLs; defaults to a GET that follows Google Drive's confirm flow. */
  fetchText?: (url: string) => Promise<string>;
  /** Workflow files to read besides the configured ones (`phoenix plan --workflow FILE`). */
  extraWorkflows?: readonly string[];
}

/**
 * Reads and validates the whole configuration once. Throws ConfigError listing every problem.
 * The result is deeply frozen: pass it in, never read process.env elsewhere.
 */
export async function loadConfig(env: NodeJS.ProcessEnv, options: LoadOptions = {}): Promise<Config> {
  const problems: string[] = [];
  const e = parseEnvironment(env, problems);
  const endpoints = {
    civitai: e.CIVITAI_BASE_URL,
    hf: e.HF_ENDPOINT,
    gdrive: e.GDRIVE_BASE_URL,
    gdriveUsercontent: e.GDRIVE_USERCONTENT_URL,
    registry: e.COMFY_REGISTRY_URL,
    github: e.GITHUB_BASE_URL,
  };
  const fetchText = options.fetchText ?? createManifestFetcher(endpoints);
  const models = environmentModels(e, endpoints, problems);
  const nodes = environmentNodes(e, problems);
  const workflowSources: WorkflowSource[] = [];
  const fleet = { fleet: fleetConfig(e, problems), mirror: mirrorConfig(e, problems), redisCluster: redisCluster(e, problems) };
  if (e.PROVISION_URL) {
    const manifest = await readManifest(e.PROVISION_URL, fetchText, endpoints, problems);
    models.push(...manifest.models);
    nodes.push(...manifest.nodes);
    workflowSources.push(...manifest.workflows);
  }
  const taken = new Set(workflowSources.map((w) => w.name));
  workflowSources.push(
    ...sourcesFromLocations(e.PROVISION_WORKFLOWS, (i) => `PROVISION_WORKFLOWS[${i}]`, taken, endpoints),
    ...sourcesFromLocations(options.extraWorkflows ?? [], () => '--workflow', taken, endpoints),
  );
  checkNodeNames(nodes, problems);
  accessProblems(e, splitArgs(e.COMFY_ARGS), problems);
  const catalog = new WorkflowCatalog(endpoints, models, nodes);
  for (const source of workflowSources) {
    const needs = await readWorkflowSource(source, fetchText, problems);
    if (needs) catalog.add(source.name, source.origin, needs, problems);
  }
  checkWebhook(e, problems);
  problems.push(...hostPatternProblems('PRIVACY_ALLOW', e.PRIVACY_ALLOW), ...hostPatternProblems('PRIVACY_DENY', e.PRIVACY_DENY));
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(
    assemble(env, e, { endpoints, models: catalog.allModels(), nodes: catalog.allNodes(), workflows: catalog.records, ...fleet }),
  );
}

type Env = z.output<typeof EnvSchema>;

/**
 * The environment through the schema. A variable that fails is reported and left out, so its
 * default stands in and every other problem is found in the same run.
 */
function parseEnvironment(env: NodeJS.ProcessEnv, problems: string[]): Env {
  const folded = foldEnvironment(env, problems);
  const parsed = EnvSchema.safeParse(folded);
  if (parsed.success) return parsed.data;
  problems.push(...formatIssues('', parsed.error).map((p) => p.replace(/^\./, '')));
  const bad = new Set(parsed.error.issues.map((i) => String(i.path[0])));
  const rest = EnvSchema.safeParse(Object.fromEntries(Object.entries(folded).filter(([k]) => !bad.has(k))));
  if (!rest.success) throw new ConfigError(problems);
  return rest.data;
}

/** Models named by CIVITAI_* and HUGGINGFACE_MODELS, each with the variable and index it came from. */
function environmentModels(e: Env, endpoints: SpecEndpoints, problems: string[]): ConfiguredModel[] {
  const models: ConfiguredModel[] = [];
  const add = (origin: string, raw: Record<string, unknown>): void => {
    const r = ModelSpec.safeParse(raw);
    if (r.success) models.push({ origin, spec: r.data });
    else problems.push(...formatIssues(origin, r.error));
  };
  e.CIVITAI_MODELS.forEach((id, i) => add(`CIVITAI_MODELS[${i}]`, { source: 'civitai', versionId: id }));
  for (const [variable, folder] of CIVITAI_FORCED) {
    e[variable].forEach((id, i) => add(`${variable}[${i}]`, { source: 'civitai', versionId: id, category: folder }));
  }
  e.HUGGINGFACE_MODELS.forEach((text, i) => {
    const raw = parseShortSpec(text, endpoints);
    if (raw.source === 'unknown') problems.push(`HUGGINGFACE_MODELS[${i}]: "${text}" is not owner/repo[@rev][/path] or a Hugging Face URL`);
    else add(`HUGGINGFACE_MODELS[${i}]`, raw);
  });
  return models;
}

/** Custom nodes named by COMFY_CUSTOM_NODE_GIT_URLS (`url[@ref]`) and COMFY_NODES (`registry-id[@version]`). */
function environmentNodes(e: Env, problems: string[]): NodeSpec[] {
  const nodes: NodeSpec[] = [];
  const add = (origin: string, raw: Record<string, unknown>): void => {
    const r = parseNodeSpec(raw);
    if (r.success) nodes.push(r.data);
    else problems.push(...formatIssues(origin, r.error));
  };
  e.COMFY_CUSTOM_NODE_GIT_URLS.forEach((text, i) => {
    const { url, ref } = splitNodeUrl(text);
    add(`COMFY_CUSTOM_NODE_GIT_URLS[${i}]`, { name: nodeNameFromUrl(url), url, ...(ref ? { ref } : {}) });
  });
  e.COMFY_NODES.forEach((text, i) => add(`COMFY_NODES[${i}]`, splitRegistryNode(text)));
  return nodes;
}

function checkWebhook(e: Env, problems: string[]): void {
  if (e.PHOENIX_WEBHOOK_URL && !e.PHOENIX_WEBHOOK_SECRET) {
    problems.push('PHOENIX_WEBHOOK_SECRET: needed with PHOENIX_WEBHOOK_URL, to sign each event (X-Phoenix-Signature)');
  }
}

/** The models and nodes of the PROVISION_URL manifest; an unreadable one is a problem, not a crash. */
async function readManifest(
  location: string,
  fetchText: (url: string) => Promise<string>,
  endpoints: SpecEndpoints,
  problems: string[],
): Promise<{ models: ConfiguredModel[]; nodes: NodeSpec[]; workflows: WorkflowSource[] }> {
  try {
    const manifest = parseManifest(await readManifestText(location, fetchText), endpoints, problems, location);
    return {
      models: manifest.models.map((m) => ({ origin: `manifest ${m.key}`, spec: m.spec })),
      nodes: manifest.nodes,
      workflows: manifest.workflows.map((w) => ({ name: w.name, origin: `manifest ${w.key}`, location: w.location })),
    };
  } catch (err) {
    problems.push(`PROVISION_URL: cannot read the manifest: ${(err as Error).message}`);
    return { models: [], nodes: [], workflows: [] };
  }
}

/** Two sources cannot share one custom_nodes/ folder; the same node asked for twice is one node. */
function checkNodeNames(nodes: NodeSpec[], problems: string[]): void {
  const seen = new Map<string, string>();
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    const same = seen.get(n.name);
    if (same === JSON.stringify(n)) nodes.splice(i--, 1);
    else if (same !== undefined) problems.push(`custom node "${n.name}": asked for twice (two sources cannot share custom_nodes/${n.name})`);
    else seen.set(n.name, JSON.stringify(n));
  }
}

/**
 * Secrets: every token, password and header value in force, and the credentials inside model,
 * node and manifest URLs, for redaction and the environment scrub.
 */
function collectSecrets(e: Env, passwords: readonly string[], models: readonly ConfiguredModel[], nodes: readonly NodeSpec[]): string[] {
  const headerSecrets = models.flatMap((m) => (m.spec.source === 'url' && m.spec.headers ? Object.values(m.spec.headers) : []));
  const webhook = [e.PHOENIX_WEBHOOK_SECRET, e.PHOENIX_WEBHOOK_URL];
  const fleetSecrets = [e.AWS_ACCESS_KEY_ID, e.AWS_SECRET_ACCESS_KEY, e.AWS_SESSION_TOKEN, e.METRICS_TOKEN];
  const urls = [
    ...models.flatMap((m) => ('url' in m.spec ? [m.spec.url] : [])),
    ...nodes.flatMap((n) => ('url' in n ? [n.url] : [])),
    ...(e.PROVISION_URL ? [e.PROVISION_URL] : []),
    ...e.PROVISION_WORKFLOWS,
  ];
  return [
    e.CIVITAI_TOKEN,
    e.HF_TOKEN,
    e.RUNPOD_API_KEY,
    ...passwords,
    ...headerSecrets,
    ...webhook,
    ...fleetSecrets,
    ...urls.flatMap(urlSecrets),
    ...redisPassword(e.REDIS_URL),
  ].filter(
    (s): s is string => typeof s === 'string' && s.length >= 4,
  );
}

/** The Config object from validated parts; paths resolved, passwords generated where unset. */
function assemble(
  env: NodeJS.ProcessEnv,
  e: Env,
  parts: {
    endpoints: Config['endpoints'];
    models: ConfiguredModel[];
    nodes: NodeSpec[];
    workflows: WorkflowRecord[];
    fleet: FleetConfig;
    mirror: MirrorConfig | undefined;
    redisCluster: RedisNode[] | undefined;
  },
): Config {
  const workspace = path.resolve(e.WORKSPACE);
  const comfyDir = path.resolve(e.COMFYUI_DIR ?? path.join(workspace, 'ComfyUI'));
  const persistentStorage =
    e.PERSISTENT_STORAGE !== 'none'
      ? path.resolve(e.PERSISTENT_STORAGE)
      : e.USE_VOLUME
        ? path.join(workspace, 'storage')
        : undefined;
  const password = e.PHOENIX_PASSWORD ?? generatePassword();
  const apiToken = e.PHOENIX_API_TOKEN ?? generateToken();
  const fbPassword = e.FB_PASSWORD ?? generatePassword();
  const secrets = collectSecrets(e, [password, apiToken, fbPassword], parts.models, parts.nodes);
  return {
    workspace,
    stateDir: path.join(workspace, '.phoenix'),
    comfyui: {
      dir: comfyDir,
      python: e.COMFYUI_PYTHON,
      port: e.COMFYUI_PORT,
      auth: e.COMFYUI_AUTH,
      listen: comfyListen(e),
      args: splitArgs(e.COMFY_ARGS),
      waitFor: e.COMFYUI_WAIT_FOR,
      user: e.COMFYUI_USER,
      env: scrubEnvironment(env, secrets),
    },
    privacy: {
      enabled: e.PRIVACY_ENABLED,
      blockTelemetry: e.BLOCK_TELEMETRY,
      blockAiServices: e.BLOCK_AI_SERVICES,
      monitoringOnly: e.MONITORING_ONLY,
      graceMs: e.DOWNLOAD_GRACE_PERIOD * 1000,
      allow: e.PRIVACY_ALLOW.map(normalizeHost),
      deny: e.PRIVACY_DENY.map(normalizeHost),
    },
    server: {
      port: e.PHOENIX_PORT,
      username: e.PHOENIX_USERNAME,
      password,
      passwordGenerated: !e.PHOENIX_PASSWORD,
      apiToken,
      apiTokenGenerated: !e.PHOENIX_API_TOKEN,
      trustedProxies: e.PHOENIX_TRUSTED_PROXIES,
    },
    filebrowser: { port: e.FILEBROWSER_PORT, username: e.FB_USERNAME, password: fbPassword, passwordGenerated: !e.FB_PASSWORD },
    redisUrl: e.REDIS_URL,
    redisCluster: parts.redisCluster,
    fleet: parts.fleet,
    mirror: parts.mirror,
    metricsToken: e.METRICS_TOKEN,
    persistentStorage,
    modelsRoot: persistentStorage ? path.join(persistentStorage, 'models') : path.join(comfyDir, 'models'),
    tokens: { civitai: e.CIVITAI_TOKEN, hf: e.HF_TOKEN },
    runpod: { apiKey: e.RUNPOD_API_KEY, baseUrl: e.RUNPOD_API_BASE_URL, podId: e.RUNPOD_POD_ID },
    endpoints: parts.endpoints,
    models: parts.models,
    nodes: parts.nodes,
    workflows: parts.workflows,
    webhook: e.PHOENIX_WEBHOOK_URL && e.PHOENIX_WEBHOOK_SECRET ? { url: e.PHOENIX_WEBHOOK_URL, secret: e.PHOENIX_WEBHOOK_SECRET } : undefined,
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
  };
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

/** 24 characters (144 bits). */
function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** 43 characters (256 bits). */
function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
