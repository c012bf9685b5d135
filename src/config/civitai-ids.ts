/**
 * The ways people name a CivitAI model: AIR URNs (`urn:air:sdxl:lora:civitai:328553@368189`),
 * model pages (`/models/4201/name?modelVersionId=130072`, the latest version without it), download
 * links (`/api/download/models/130072?fileId=…`) and API URLs. All become the same reference.
 */
export interface CivitaiRef {
  modelId?: string;
  versionId?: string;
  fileId?: string;
}

/** `urn:air:<ecosystem>:<type>:civitai:<modelId>[@<versionId>][:<layer>][.<format>]` */
const AIR = /^urn:air:[\w.-]+:[\w.-]+:civitai:(\d+)(?:@(\d+))?(?::[\w.-]+)?(?:\.[\w]+)?$/i;

export function isAir(text: string): boolean {
  return /^urn:air:/i.test(text.trim());
}

export function parseAir(text: string): CivitaiRef | undefined {
  const m = AIR.exec(text.trim());
  if (!m) return undefined;
  return { modelId: m[1]!, ...(m[2] ? { versionId: m[2] } : {}) };
}

/** CivitAI's public hosts, besides the configured CIVITAI_BASE_URL. */
const CIVITAI_HOSTS = ['civitai.com', 'www.civitai.com', 'civitai.green', 'www.civitai.green'];

export function isCivitaiHost(url: URL, civitaiBaseUrl: string | undefined): boolean {
  return CIVITAI_HOSTS.includes(url.host) || (civitaiBaseUrl !== undefined && new URL(civitaiBaseUrl).host === url.host);
}

/** A reference from a CivitAI URL's path and query, or undefined when it names no model. */
export function parseCivitaiUrl(url: URL): CivitaiRef | undefined {
  const fileId = numeric(url.searchParams.get('fileId'));
  const withFile = (ref: CivitaiRef): CivitaiRef => (fileId ? { ...ref, fileId } : ref);
  const download = /^\/api\/download\/models\/(\d+)\/?$/.exec(url.pathname);
  if (download) return withFile({ versionId: download[1]! });
  const apiVersion = /^\/api\/v1\/model-versions\/(\d+)\/?$/.exec(url.pathname);
  if (apiVersion) return withFile({ versionId: apiVersion[1]! });
  const page = /^\/(?:api\/v1\/)?models\/(\d+)(?:\/[^/]*)?\/?$/.exec(url.pathname);
  if (page) {
    const versionId = numeric(url.searchParams.get('modelVersionId'));
    return withFile({ modelId: page[1]!, ...(versionId ? { versionId } : {}) });
  }
  return undefined;
}

function numeric(v: string | null): string | undefined {
  return v && /^\d+$/.test(v) ? v : undefined;
}
