import { ConfigError, type Config } from '../config/index.js';
import { TransientError, UserError, errorMessage } from '../lib/errors.js';
import { USER_AGENT } from '../lib/http.js';
import { Redactor } from '../lib/log.js';

/** The image `phoenix template` points at unless told otherwise. */
export const DEFAULT_IMAGE = 'ghcr.io/phoenix-pod/phoenix:latest';
export const DEFAULT_TEMPLATE_NAME = 'Phoenix ComfyUI';

/** A RunPod pod template, as `saveTemplate` takes it. */
export interface RunPodTemplate {
  name: string;
  imageName: string;
  dockerArgs: string;
  containerDiskInGb: number;
  volumeInGb: number;
  volumeMountPath: string;
  ports: string;
  env: { key: string; value: string }[];
  isServerless: boolean;
  startSsh: boolean;
  isPublic: boolean;
  readme: string;
}

export interface TemplateInputs {
  /** Template name; RunPod requires it to be unique per account. Default "Phoenix ComfyUI". */
  name?: string;
  /** Default ghcr.io/phoenix-pod/phoenix:latest. */
  imageName?: string;
  /** Container disk: the image, ComfyUI's Python packages and custom nodes. Default 150. */
  containerDiskInGb?: number;
  /** Pod volume at /workspace: models and outputs. Default 100. */
  volumeInGb?: number;
  /** The three HTTP ports; default 8188 (ComfyUI), 8189 (board and API), 8080 (FileBrowser). */
  ports?: { comfyui: number; phoenix: number; filebrowser: number };
}

interface TemplateVariable {
  key: string;
  /** The value the template carries. Secrets always carry an empty value. */
  value: string;
  meaning: string;
  secret?: boolean;
}

/**
 * What a user fills in on RunPod's deploy page. Empty means "unset": Phoenix applies its own
 * default (a generated password, no models, …).
 */
const BASIC_VARIABLES: readonly TemplateVariable[] = [
  { key: 'PHOENIX_USERNAME', value: 'admin', meaning: 'the one login for ComfyUI (port 8188), the board, /status and the API (port 8189)' },
  { key: 'PHOENIX_PASSWORD', value: '', meaning: 'its password (≥ 12 characters); empty: generated and shown once in the log', secret: true },
  { key: 'PHOENIX_API_TOKEN', value: '', meaning: 'token for scripts (Authorization: Bearer …, ≥ 16 characters); empty: generated and shown once in the log', secret: true },
  { key: 'COMFYUI_AUTH', value: 'on', meaning: 'on: ComfyUI asks for the login above; off: ComfyUI\'s port is open to anyone with its address' },
  { key: 'FB_USERNAME', value: 'admin', meaning: 'FileBrowser login (port 8080)' },
  { key: 'FB_PASSWORD', value: '', meaning: 'its password (≥ 12 characters); empty: generated and shown once in the log', secret: true },
  { key: 'CIVITAI_TOKEN', value: '', meaning: 'CivitAI API key, for models that need a login', secret: true },
  { key: 'HF_TOKEN', value: '', meaning: 'Hugging Face token, for gated repositories', secret: true },
  { key: 'PROVISION_WORKFLOWS', value: '', meaning: 'ComfyUI workflow files (http(s) URL, Google Drive link or path): their models and custom nodes' },
  { key: 'CIVITAI_MODELS', value: '', meaning: 'comma-separated CivitAI model-version ids or AIR URNs' },
  { key: 'HUGGINGFACE_MODELS', value: '', meaning: 'comma-separated owner/repo[@rev]/path/in/repo or owner/repo' },
  { key: 'PROVISION_URL', value: '', meaning: 'TOML manifest: http(s) URL, Google Drive link or path' },
  { key: 'COMFY_CUSTOM_NODE_GIT_URLS', value: '', meaning: 'comma-separated custom node git URLs, optional @ref' },
  { key: 'COMFY_NODES', value: '', meaning: 'comma-separated Comfy Registry nodes, id@version' },
  { key: 'PHOENIX_WEBHOOK_URL', value: '', meaning: 'receives JSON events (model, workflow and pod ready, ComfyUI crashed)', secret: true },
  { key: 'PHOENIX_WEBHOOK_SECRET', value: '', meaning: 'signs each event (X-Phoenix-Signature), ≥ 16 characters', secret: true },
  { key: 'COMFY_ARGS', value: '', meaning: 'extra ComfyUI flags' },
  { key: 'COMFYUI_WAIT_FOR', value: 'all', meaning: 'what ComfyUI waits for before it starts: all, nodes or none' },
  { key: 'USE_VOLUME', value: '', meaning: 'keep models on the volume (/workspace/storage); empty: true when /workspace is a mounted volume' },
  { key: 'DOWNLOAD_CONCURRENCY', value: '3', meaning: 'files downloading at once' },
  { key: 'DEBUG_MODE', value: 'false', meaning: 'debug logging' },
];

/** Privacy: what the pod may talk to, and what it leaves behind. */
const PRIVACY_VARIABLES: readonly TemplateVariable[] = [
  { key: 'PRIVACY_ENABLED', value: 'false', meaning: 'true: outgoing traffic only to the model hosts, then to PRIVACY_ALLOW; telemetry blocked' },
  { key: 'PRIVACY_ALLOW', value: '', meaning: 'comma-separated hosts ComfyUI and custom nodes may reach with privacy on' },
  { key: 'MONITORING_ONLY', value: 'false', meaning: 'true: privacy reports what it would block and blocks nothing' },
  { key: 'PARANOID_MODE', value: 'false', meaning: 'true: when the pod stops, remove partial downloads, the queue state, pip and Hugging Face caches and shell histories (verified models stay)' },
];

/** Fleet: many pods on one Redis and one model mirror. All empty: the pod stands alone. */
const FLEET_VARIABLES: readonly TemplateVariable[] = [
  { key: 'REDIS_URL', value: '', meaning: 'the fleet\'s Redis (redis:// or rediss://, with its password); empty: a Redis of the pod\'s own', secret: true },
  { key: 'PHOENIX_POD_LABELS', value: '', meaning: 'labels shown on the fleet board, k=v,…' },
  { key: 'PHOENIX_FLEET', value: 'false', meaning: 'true: this pod also serves the fleet board and API' },
  { key: 'MODEL_MIRROR', value: '', meaning: 's3://bucket/prefix: each model is fetched from its origin once, the other pods take it from here' },
  { key: 'MODEL_MIRROR_ENDPOINT', value: '', meaning: 'the mirror\'s S3 endpoint (R2, B2, MinIO, RunPod\'s S3 API); empty: AWS S3' },
  { key: 'AWS_ACCESS_KEY_ID', value: '', meaning: 'the mirror\'s access key', secret: true },
  { key: 'AWS_SECRET_ACCESS_KEY', value: '', meaning: 'the mirror\'s secret key', secret: true },
  { key: 'AWS_REGION', value: 'us-east-1', meaning: 'the mirror\'s region (auto for R2)' },
];

/** The template for Phoenix's image. Pure: reads no environment and carries no secret value. */
export function buildTemplate(inputs: TemplateInputs = {}): RunPodTemplate {
  const ports = inputs.ports ?? { comfyui: 8188, phoenix: 8189, filebrowser: 8080 };
  const portVariables: TemplateVariable[] = [
    { key: 'COMFYUI_PORT', value: String(ports.comfyui), meaning: 'ComfyUI, behind the login' },
    { key: 'PHOENIX_PORT', value: String(ports.phoenix), meaning: 'Bull Board, /status and the API' },
    { key: 'FILEBROWSER_PORT', value: String(ports.filebrowser), meaning: 'FileBrowser over /workspace' },
  ];
  const variables = [...BASIC_VARIABLES, ...PRIVACY_VARIABLES, ...FLEET_VARIABLES, ...portVariables];
  return {
    name: inputs.name ?? DEFAULT_TEMPLATE_NAME,
    imageName: inputs.imageName ?? DEFAULT_IMAGE,
    dockerArgs: '',
    containerDiskInGb: inputs.containerDiskInGb ?? 150,
    volumeInGb: inputs.volumeInGb ?? 100,
    volumeMountPath: '/workspace',
    ports: `${ports.comfyui}/http,${ports.phoenix}/http,${ports.filebrowser}/http`,
    env: variables.map((v) => ({ key: v.key, value: v.secret ? '' : v.value })),
    isServerless: false,
    startSsh: true,
    isPublic: false,
    readme: templateReadme(variables, ports),
  };
}

function templateReadme(variables: readonly TemplateVariable[], ports: { comfyui: number; phoenix: number; filebrowser: number }): string {
  const rows = variables.map((v) => `| ${v.key} | ${v.meaning} | ${v.secret ? '(secret)' : v.value || '—'} |`);
  return [
    '# Phoenix: ComfyUI, provisioned',
    '',
    'At start Phoenix downloads the models and custom nodes you list below (checksums verified),',
    'then starts ComfyUI. Progress and every queue are on the board.',
    '',
    `- ComfyUI: port ${ports.comfyui}`,
    `- Bull Board: port ${ports.phoenix}, path /board/ (status: /status, read-only board)`,
    `- FileBrowser over /workspace: port ${ports.filebrowser}, its own login FB_USERNAME / FB_PASSWORD`,
    '',
    `ComfyUI and the board ask for one login, PHOENIX_USERNAME / PHOENIX_PASSWORD: a sign-in page in the`,
    `browser (each port's address signs in once; Sign out at /login), Basic auth or`,
    '`Authorization: Bearer <PHOENIX_API_TOKEN>` for scripts. Left empty, the password and the token',
    'are generated and printed once in the log. COMFYUI_AUTH=off opens ComfyUI\'s port to anyone.',
    '',
    'Put tokens and passwords in RunPod secrets and refer to them as `{{ RUNPOD_SECRET_<name> }}`;',
    'never type them into a shared template.',
    '',
    '| variable | meaning | default |',
    '|---|---|---|',
    ...rows,
  ].join('\n');
}

export interface DeployOptions {
  apiKey: string;
  /** RunPod's API origin (RUNPOD_API_BASE_URL), without /graphql. */
  baseUrl: string;
  fetch?: typeof fetch;
}

const SAVE_TEMPLATE = `mutation saveTemplate($input: SaveTemplateInput!) {
  saveTemplate(input: $input) { id name imageName }
}`;

interface GraphQLAnswer {
  data?: { saveTemplate?: { id?: string } | null } | null;
  errors?: { message?: string }[];
}

/**
 * Saves the template in the RunPod account of `apiKey` and returns its id.
 * A refused key or a refused template is a UserError; an unreachable API or a 5xx is transient.
 */
export async function deployTemplate(template: RunPodTemplate, options: DeployOptions): Promise<string> {
  const doFetch = options.fetch ?? fetch;
  const endpoint = `${options.baseUrl.replace(/\/+$/, '')}/graphql`;
  const redactor = new Redactor([options.apiKey]);
  const hide = (text: string): string => redactor.redact(text);
  let res: Response;
  try {
    res = await doFetch(endpoint, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${options.apiKey}`,
        'content-type': 'application/json',
        accept: 'application/json',
        'user-agent': USER_AGENT,
      },
      body: JSON.stringify({ query: SAVE_TEMPLATE, variables: { input: template } }),
    });
  } catch (err) {
    throw new TransientError(`cannot reach ${new URL(endpoint).origin}: ${hide(errorMessage(err))}`, { cause: err });
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new UserError(`RunPod refused the API key (HTTP ${res.status}): check RUNPOD_API_KEY (it needs read/write access)`);
  }
  const text = await res.text();
  let answer: GraphQLAnswer | undefined;
  try {
    answer = JSON.parse(text) as GraphQLAnswer;
  } catch {
    answer = undefined;
  }
  const refusal = answer?.errors?.[0]?.message;
  if (refusal !== undefined) throw new UserError(`RunPod refused the template "${template.name}": ${hide(refusal)}`);
  if (res.status >= 500 || res.status === 429) throw new TransientError(`RunPod answered HTTP ${res.status}; try again later`);
  const id = answer?.data?.saveTemplate?.id;
  if (!res.ok || typeof id !== 'string') {
    throw new UserError(`RunPod answered HTTP ${res.status} without a template id: ${hide(text.slice(0, 200))}`);
  }
  return id;
}

export interface TemplateCommandOptions {
  deploy: boolean;
  imageName?: string | undefined;
  name?: string | undefined;
  /** Where the template and the result go; defaults to stdout. */
  out?: NodeJS.WritableStream;
  /** Where a refusal goes; defaults to stderr. */
  err?: NodeJS.WritableStream;
  fetch?: typeof fetch;
}

/**
 * `phoenix template [--deploy] [--image <ref>] [--name <name>]`: prints the template JSON, and
 * with --deploy saves it in the RunPod account of RUNPOD_API_KEY. Returns the exit code.
 */
export async function runTemplate(config: Config, options: TemplateCommandOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const template = buildTemplate({
    ...(options.name ? { name: options.name } : {}),
    ...(options.imageName ? { imageName: options.imageName } : {}),
    ports: { comfyui: config.comfyui.port, phoenix: config.server.port, filebrowser: config.filebrowser.port },
  });
  out.write(`${JSON.stringify(template, null, 2)}\n`);
  if (!options.deploy) return 0;
  const apiKey = config.runpod.apiKey;
  if (!apiKey) throw new ConfigError(['RUNPOD_API_KEY: needed by --deploy (RunPod console → Settings → API Keys)']);
  try {
    const id = await deployTemplate(template, { apiKey, baseUrl: config.runpod.baseUrl, ...(options.fetch ? { fetch: options.fetch } : {}) });
    out.write(`saved RunPod template "${template.name}" (${template.imageName}): id ${id}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof UserError || err instanceof TransientError)) throw err;
    (options.err ?? process.stderr).write(`phoenix template: ${err.message}\n`);
    return 1;
  }
}
