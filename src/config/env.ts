import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** Variables whose values are secrets: never logged, never passed to ComfyUI. */
export const SECRET_VARIABLES = [
  'CIVITAI_TOKEN',
  'HF_TOKEN',
  'HUGGINGFACE_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'PHOENIX_PASSWORD',
  'PHOENIX_API_TOKEN',
  'FB_PASSWORD',
  'FILEBROWSER_PASSWORD',
  'RUNPOD_API_KEY',
  'REDIS_URL',
  'PHOENIX_WEBHOOK_SECRET',
  // Webhook URLs (Slack's, Discord's…) are capabilities: whoever holds one can post.
  'PHOENIX_WEBHOOK_URL',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'METRICS_TOKEN',
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

/** A pod id: it names the pod's queues, its Redis keys and its entry in the fleet registry. */
export const POD_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The environment, after aliases and `<NAME>_FILE` secrets are folded in. */
export const EnvSchema = z.object({
  WORKSPACE: z.string().min(1).default('/workspace'),
  COMFYUI_DIR: z.string().min(1).optional(),
  COMFYUI_PYTHON: z.string().min(1).default('python3'),
  COMFYUI_PORT: int(1, 65535).default(8188),
  COMFYUI_AUTH: z
    .string()
    .transform((v) => v.toLowerCase())
    .pipe(z.enum(['on', 'off'], { error: 'must be on or off' }))
    .default('on'),
  COMFYUI_INTERNAL_PORT: int(1, 65535).optional(),
  COMFY_ARGS: z.string().default(''),
  COMFYUI_USER: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user name (lowercase letters, digits, "_" and "-")').optional(),
  COMFYUI_WAIT_FOR: z.enum(['all', 'nodes', 'none'], { error: 'must be all, nodes or none' }).default('all'),
  PHOENIX_PORT: int(1, 65535).default(8189),
  PHOENIX_USERNAME: z.string().min(1).default('admin'),
  PHOENIX_PASSWORD: z.string().min(12, 'must be at least 12 characters').optional(),
  PHOENIX_API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  PHOENIX_TRUSTED_PROXIES: list.default(['loopback']),
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
  /** Set by RunPod; names this pod's proxy host names (`<id>-<port>.proxy.runpod.net`). */
  RUNPOD_POD_ID: z.string().min(1).optional(),
  CIVITAI_MODELS: list.default([]),
  CIVITAI_CHECKPOINTS_TO_DOWNLOAD: list.default([]),
  CIVITAI_LORAS_TO_DOWNLOAD: list.default([]),
  CIVITAI_VAES_TO_DOWNLOAD: list.default([]),
  CIVITAI_EMBEDDINGS_TO_DOWNLOAD: list.default([]),
  CIVITAI_CONTROLNETS_TO_DOWNLOAD: list.default([]),
  CIVITAI_UPSCALERS_TO_DOWNLOAD: list.default([]),
  HUGGINGFACE_MODELS: list.default([]),
  PROVISION_URL: z.string().min(1).optional(),
  PROVISION_WORKFLOWS: list.default([]),
  COMFY_CUSTOM_NODE_GIT_URLS: list.default([]),
  COMFY_NODES: list.default([]),
  COMFY_REGISTRY_URL: urlVar.default('https://api.comfy.org'),
  GITHUB_BASE_URL: urlVar.default('https://github.com'),
  PHOENIX_WEBHOOK_URL: z.string().regex(/^https?:\/\/[^\s]+$/i, 'must be an http(s) URL').optional(),
  PHOENIX_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  EXTRA_PYTHON_PACKAGES: z.string().default(''),
  DOWNLOAD_CONCURRENCY: int(1, 32).default(3),
  DOWNLOAD_CONNECTIONS: int(1, 64).default(8),
  DOWNLOAD_STALL_TIMEOUT: int(1, 3600).default(60),
  DOWNLOAD_ATTEMPTS: int(1, 50).default(5),
  HOME: z.string().min(1).optional(),
  DEBUG_MODE: bool.default(false),
  PARANOID_MODE: bool.default(false),
  PRIVACY_ENABLED: bool.default(false),
  BLOCK_TELEMETRY: bool.default(true),
  BLOCK_AI_SERVICES: bool.default(true),
  MONITORING_ONLY: bool.default(false),
  DOWNLOAD_GRACE_PERIOD: int(0, 86_400).default(300),
  PRIVACY_ALLOW: list.default([]),
  PRIVACY_DENY: list.default([]),
  // Fleet: one shared Redis (or Redis Cluster) and one S3-compatible model mirror for many pods.
  REDIS_CLUSTER: z.string().optional(),
  PHOENIX_POD_ID: z.string().regex(POD_ID, 'must be 1-63 letters, digits, dots, dashes or underscores').optional(),
  HOSTNAME: z.string().min(1).optional(),
  PHOENIX_POD_LABELS: z.string().optional(),
  PHOENIX_FLEET: bool.default(false),
  MODEL_MIRROR: z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/, 'must be s3://bucket[/prefix]').optional(),
  MODEL_MIRROR_ENDPOINT: urlVar.optional(),
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
  AWS_REGION: z.string().regex(/^[a-z0-9-]+$/, 'must be a region name such as us-east-1 or auto').default('us-east-1'),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
});

/** Older templates' names, folded into the canonical variable when that one is unset. */
const ALIASES: Record<string, string> = {
  FILEBROWSER_PASSWORD: 'FB_PASSWORD',
  HUGGINGFACE_TOKEN: 'HF_TOKEN',
  HF_REPOS_TO_DOWNLOAD: 'HUGGINGFACE_MODELS',
  MODELS_MANIFEST: 'PROVISION_URL',
  COMFY_REGISTRY_NODES: 'COMFY_NODES',
};

const FILE_SECRETS = [
  'CIVITAI_TOKEN',
  'HF_TOKEN',
  'PHOENIX_PASSWORD',
  'PHOENIX_API_TOKEN',
  'FB_PASSWORD',
  'PHOENIX_WEBHOOK_SECRET',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'METRICS_TOKEN',
];

/** Applies aliases and `<NAME>_FILE`; keeps only non-empty values so defaults apply to blanks. */
export function foldEnvironment(env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
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
export function scrubEnvironment(env: NodeJS.ProcessEnv, secrets: readonly string[]): Record<string, string> {
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
