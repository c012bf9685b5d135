import { normalizeHost } from '../config/host-pattern.js';
import type { Config } from '../config/index.js';

/**
 * The host lists the egress policy works from. Patterns use config/host-pattern's syntax; a `*`
 * may stand inside a label here (regional API hosts).
 */

/** Analytics, crash reporting and usage tracking that Python packages and web front ends call. */
export const TELEMETRY_HOSTS: readonly string[] = [
  'sentry.io', '*.sentry.io', '*.sentry-cdn.com',
  'google-analytics.com', '*.google-analytics.com', 'analytics.google.com', '*.googletagmanager.com', 'stats.g.doubleclick.net',
  'api.segment.io', '*.segment.io', '*.segment.com',
  'api.mixpanel.com', '*.mixpanel.com', 'mixpanel.com',
  '*.amplitude.com',
  'posthog.com', '*.posthog.com',
  'api.gradio.app',
  'scarf.sh', '*.scarf.sh',
  '*.datadoghq.com', '*.datadoghq.eu', 'browser-intake-datadoghq.com',
  '*.nr-data.net', '*.newrelic.com',
  '*.bugsnag.com', 'api.rollbar.com',
  '*.hotjar.com', '*.hotjar.io', '*.clarity.ms', 'plausible.io',
];

/**
 * Outside AI services a node could send prompts and images to: the big model APIs and the
 * providers behind ComfyUI's paid API nodes, when called directly.
 */
export const AI_SERVICE_HOSTS: readonly string[] = [
  'api.openai.com', '*.openai.com', '*.openai.azure.com', 'oaidalleapiprodscus.blob.core.windows.net',
  'api.anthropic.com', '*.anthropic.com',
  'generativelanguage.googleapis.com', 'aiplatform.googleapis.com', '*-aiplatform.googleapis.com',
  'api.bfl.ai', '*.bfl.ai', 'api.bfl.ml', '*.bfl.ml',
  'api.stability.ai', '*.stability.ai',
  'replicate.com', '*.replicate.com', 'replicate.delivery', '*.replicate.delivery',
  'fal.ai', '*.fal.ai', 'fal.run', '*.fal.run', 'fal.media', '*.fal.media',
  'api-inference.huggingface.co', 'router.huggingface.co',
  'api.mistral.ai', 'api.cohere.ai', 'api.cohere.com', 'api.groq.com', 'api.together.xyz', 'api.together.ai',
  'api.deepseek.com', 'api.x.ai', 'api.perplexity.ai', 'openrouter.ai', 'api.elevenlabs.io',
  'api.ideogram.ai', 'api.lumalabs.ai', 'api.runwayml.com', 'api.dev.runwayml.com', '*.klingai.com',
  'api.minimax.chat', 'api.minimaxi.chat', 'api.minimax.io', 'api.recraft.ai', 'api.tripo3d.ai',
  'api.pixverse.ai', 'api.vidu.com', '*.cognitiveservices.azure.com', 'bedrock-runtime.*.amazonaws.com',
];

/**
 * Where models come from, beside the configured service origins: CivitAI (its storage redirects
 * to Cloudflare R2 and Backblaze B2), Hugging Face (LFS and Xet CDNs), Google Drive.
 */
const MODEL_SOURCE_HOSTS: readonly string[] = [
  'civitai.com', '*.civitai.com', 'civitai.red', '*.civitai.red', '*.r2.cloudflarestorage.com', '*.backblazeb2.com',
  'huggingface.co', '*.huggingface.co', 'hf.co', '*.hf.co',
  'drive.google.com', 'drive.usercontent.google.com',
];

/** Python package indexes for node requirements (PIP_INDEX_URL / PIP_EXTRA_INDEX_URL add theirs). */
const PACKAGE_INDEX_HOSTS: readonly string[] = ['pypi.org', 'files.pythonhosted.org', 'download.pytorch.org'];

export interface PodHosts {
  /** Always reachable, in the strict phase too. */
  modelSources: readonly string[];
  /** The configured custom nodes' git hosts. */
  gitHosts: readonly string[];
  packageIndexes: readonly string[];
}

/** The hosts this pod's configuration needs, by role. */
export function podHosts(config: Config): PodHosts {
  const urlModels = config.models.flatMap((m) => (m.spec.source === 'url' ? [m.spec.url] : []));
  const origins = [config.endpoints.civitai, config.endpoints.hf, config.endpoints.gdrive, config.endpoints.gdriveUsercontent, config.endpoints.registry];
  const manifest = config.provisionUrl && /^https?:\/\//i.test(config.provisionUrl) ? [config.provisionUrl] : [];
  const pipIndexes = [config.comfyui.env.PIP_INDEX_URL, ...(config.comfyui.env.PIP_EXTRA_INDEX_URL ?? '').split(/\s+/)];
  return {
    modelSources: unique([...MODEL_SOURCE_HOSTS, ...hostsOf([...origins, ...manifest, ...urlModels])]),
    gitHosts: unique(hostsOf(config.nodes.flatMap((n) => ('url' in n ? [n.url] : [])))),
    packageIndexes: unique([...PACKAGE_INDEX_HOSTS, ...hostsOf(pipIndexes)]),
  };
}

function hostsOf(urls: readonly (string | undefined)[]): string[] {
  return urls.flatMap((u) => {
    if (!u) return [];
    try {
      return [normalizeHost(new URL(u).hostname)];
    } catch {
      return [];
    }
  });
}

function unique(list: readonly string[]): string[] {
  return [...new Set(list)];
}
