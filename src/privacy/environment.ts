import type { PrivacyConfig } from '../config/index.js';

/**
 * What ComfyUI's environment (and so every child of it: git, pip, install.py, nodes' code) gets
 * from the privacy settings: the egress proxy, and the opt-out switches the ecosystem honours.
 */

/** Telemetry opt-outs, each read by the library named beside it. README lists them. */
export const TELEMETRY_SWITCHES: Readonly<Record<string, string>> = {
  HF_HUB_DISABLE_TELEMETRY: '1', // huggingface_hub, and transformers/diffusers/datasets through it
  DISABLE_TELEMETRY: '1', // the older name the same libraries still read
  DO_NOT_TRACK: '1', // the Console Do Not Track convention (huggingface_hub, Scarf, others)
  GRADIO_ANALYTICS_ENABLED: 'False', // gradio's analytics to api.gradio.app
  BNB_DISABLE_TELEMETRY: '1', // bitsandbytes
  ANONYMIZED_TELEMETRY: 'False', // chromadb
  SCARF_ANALYTICS: 'false', // Scarf's install analytics (npm)
  SCARF_NO_ANALYTICS: 'true', // Scarf's Python SDK
  NO_ALBUMENTATIONS_UPDATE: '1', // albumentations' version check on import
  ALBUMENTATIONS_NO_TELEMETRY: '1', // AlbumentationsX
  STREAMLIT_BROWSER_GATHER_USAGE_STATS: 'false', // streamlit
};

/** Connections to these never go through the proxy (ComfyUI talks to itself on loopback). */
const NO_PROXY = 'localhost,127.0.0.1,::1';

/**
 * ComfyUI's environment with privacy on: proxy variables in both spellings (libcurl reads only
 * lowercase http_proxy) and, unless MONITORING_ONLY, the telemetry switches when BLOCK_TELEMETRY.
 */
export function privacyEnvironment(
  base: Readonly<Record<string, string>>,
  privacy: PrivacyConfig,
  proxyUrl: string,
): Record<string, string> {
  const proxy = {
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    NO_PROXY,
    no_proxy: NO_PROXY,
  };
  const { ALL_PROXY: _all, all_proxy: _lowerAll, ...rest } = base;
  const switches = privacy.blockTelemetry && !privacy.monitoringOnly ? TELEMETRY_SWITCHES : {};
  return { ...rest, ...switches, ...proxy };
}

/** Whether ComfyUI should get --disable-api-nodes (its paid API nodes call outside AI services). */
export function disableApiNodes(privacy: PrivacyConfig): boolean {
  return privacy.enabled && privacy.blockAiServices && !privacy.monitoringOnly;
}
