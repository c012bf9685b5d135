import { z } from 'zod';
import type { ModelFolder } from '../config/folders.js';
import type { StoredModelSpec } from '../config/model-spec.js';
import { TransientError, UserError } from '../lib/errors.js';
import { assertLooksLikeModel, fetchFollowing, filenameFromContentDisposition, httpError, probedSize, retryAfterMs } from '../lib/http.js';
import { sanitizeFilename } from '../lib/names.js';
import type { ModelSourceClient, ResolvedFile, SourceContext } from './types.js';

type CivitaiSpec = Extract<StoredModelSpec, { source: 'civitai' }>;

/** CivitAI sends no Retry-After with 429; wait this long before the next attempt. */
const DEFAULT_RETRY_AFTER_MS = 30_000;

/** ComfyUI folder of each CivitAI `model.type`; the rest (Poses, Workflows, Other…) is left to the organizer. */
const FOLDER_OF_TYPE: Readonly<Record<string, ModelFolder>> = {
  Checkpoint: 'checkpoints',
  LORA: 'loras',
  LoCon: 'loras',
  DoRA: 'loras',
  TextualInversion: 'embeddings',
  VAE: 'vae',
  Controlnet: 'controlnet',
  Upscaler: 'upscale_models',
  Hypernetwork: 'hypernetworks',
  TextEncoder: 'text_encoders',
  CLIP: 'text_encoders',
  UNet: 'diffusion_models',
  CLIPVision: 'clip_vision',
  MotionModule: 'animatediff_models',
};

export function folderOfCivitaiType(type: string): ModelFolder | undefined {
  return FOLDER_OF_TYPE[type];
}

/** The part of `GET /api/v1/model-versions/{id}` Phoenix relies on. */
const CivitaiFile = z.object({
  id: z.number(),
  name: z.string(),
  type: z.string().optional(),
  primary: z.boolean().optional(),
  metadata: z.object({ format: z.string().nullish() }).partial().nullish(),
  hashes: z.object({ SHA256: z.string().optional() }).partial().nullish(),
});
type CivitaiFile = z.output<typeof CivitaiFile>;

const ModelVersion = z.object({
  id: z.number(),
  model: z.object({ name: z.string().optional(), type: z.string() }),
  files: z.array(CivitaiFile),
});

/**
 * CivitAI model versions. Metadata from the public API; then a one-byte ranged GET through the
 * download route learns the exact size and surfaces login, early-access and archive errors before
 * the download job starts. The token goes to the CivitAI origin only: the download route answers
 * 307 to presigned storage that rejects any request carrying Authorization.
 */
export const civitaiSource: ModelSourceClient<CivitaiSpec> = {
  source: 'civitai',
  async resolve(spec, ctx): Promise<ResolvedFile[]> {
    const api = ctx.config.endpoints.civitai;
    const headers: Record<string, string> = ctx.config.tokens.civitai ? { authorization: `Bearer ${ctx.config.tokens.civitai}` } : {};
    const origin = new URL(api).origin;
    const id = spec.versionId ?? (await latestVersion(spec.modelId!, api, headers, origin, ctx));

    const metaUrl = `${api}/api/v1/model-versions/${encodeURIComponent(id)}`;
    const { response: meta } = await fetchFollowing(metaUrl, {
      headers: { accept: 'application/json' },
      secretHeaders: headers,
      secretOrigin: origin,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    if (!meta.ok) throw await civitaiError(meta, id, ctx);
    const parsed = ModelVersion.safeParse(await meta.json().catch(() => undefined));
    if (!parsed.success) throw new TransientError(`CivitAI answered model version ${id} with an unexpected body`);
    const version = parsed.data;

    const file = chooseFile(version.files, spec, id);
    const request = { url: `${api}/api/download/models/${encodeURIComponent(id)}?fileId=${file.id}`, headers, headersOrigin: origin };

    const probe = await probeDownload(request, id, ctx);
    const name = spec.filename ?? sanitizeFilename(file.name) ?? sanitizeFilename(probe.name ?? '');
    if (!name) throw new UserError(`CivitAI model version ${id}: file name "${file.name}" is not usable: set "filename"`);
    const sha256 = spec.sha256 ?? file.hashes?.SHA256?.toLowerCase();
    const category = folderOfCivitaiType(version.model.type);
    ctx.log.debug({ versionId: id, fileId: file.id, type: version.model.type }, 'resolved CivitAI model version');
    return [
      {
        name,
        ...(probe.bytes !== undefined ? { bytes: probe.bytes } : {}),
        ...(sha256 && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
        ...(category ? { category } : {}),
        request,
      },
    ];
  },
};

const ModelVersions = z.object({ modelVersions: z.array(z.object({ id: z.number() })) });

/** A model's newest version (the API lists them newest first): what a model page URL or a bare AIR means. */
async function latestVersion(modelId: string, api: string, headers: Record<string, string>, origin: string, ctx: SourceContext): Promise<string> {
  const { response } = await fetchFollowing(`${api}/api/v1/models/${encodeURIComponent(modelId)}`, {
    headers: { accept: 'application/json' },
    secretHeaders: headers,
    secretOrigin: origin,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  if (response.status === 404) {
    await response.body?.cancel();
    throw new UserError(`CivitAI has no model ${modelId}: check the model id in its page's URL (civitai.com/models/<id>)`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    if (response.status === 429) {
      throw new TransientError(`CivitAI rate limit reached for model ${modelId}`, { retryAfterMs: retryAfterMs(response) ?? DEFAULT_RETRY_AFTER_MS });
    }
    throw httpError(`CivitAI model ${modelId}`, response);
  }
  const parsed = ModelVersions.safeParse(await response.json().catch(() => undefined));
  if (!parsed.success) throw new TransientError(`CivitAI answered model ${modelId} with an unexpected body`);
  const newest = parsed.data.modelVersions[0];
  if (!newest) throw new UserError(`CivitAI model ${modelId} has no published version`);
  ctx.log.info({ modelId, versionId: newest.id }, 'CivitAI model given without a version: taking its newest version');
  return String(newest.id);
}

/** The file a spec names (`fileId`, `file`), else the one the download route would pick. */
function chooseFile(files: readonly CivitaiFile[], spec: CivitaiSpec, id: string): CivitaiFile {
  const names = files.map((f) => `${f.name} (fileId ${f.id})`).join(', ');
  if (spec.fileId !== undefined || spec.file !== undefined) {
    const named = files.find((f) => (spec.fileId !== undefined ? String(f.id) === spec.fileId : f.name === spec.file));
    if (named) return named;
    const wanted = spec.fileId !== undefined ? `fileId ${spec.fileId}` : `"${spec.file}"`;
    throw new UserError(`CivitAI model version ${id} has no file ${wanted}; it has: ${names || 'no files'}`);
  }
  const picked = pickFile(files);
  if (!picked) throw new UserError(`CivitAI model version ${id} has no files to download`);
  return picked;
}

/** The file the download route would pick for a plain request, preferring SafeTensor over pickles. */
function pickFile(files: readonly CivitaiFile[]): CivitaiFile | undefined {
  const safe = (f: CivitaiFile) => f.metadata?.format === 'SafeTensor';
  const model = (f: CivitaiFile) => f.type === undefined || f.type === 'Model' || f.type === 'Pruned Model';
  return (
    files.find((f) => f.primary && safe(f)) ??
    files.find((f) => model(f) && safe(f)) ??
    files.find((f) => f.primary) ??
    files.find(model) ??
    files[0]
  );
}

interface DownloadProbe {
  name: string | undefined;
  bytes: number | undefined;
}

/** GET with `Range: bytes=0-0` (CivitAI answers HEAD with 401 even with a valid token). */
async function probeDownload(
  request: { url: string; headers: Record<string, string>; headersOrigin: string },
  id: string,
  ctx: SourceContext,
): Promise<DownloadProbe> {
  const { response, url } = await fetchFollowing(request.url, {
    headers: { range: 'bytes=0-0' },
    secretHeaders: request.headers,
    secretOrigin: request.headersOrigin,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  const final = new URL(url);
  if (final.origin === request.headersOrigin && (final.pathname === '/login' || final.searchParams.get('reason') === 'download-auth')) {
    await response.body?.cancel();
    throw loginRequired(id, ctx);
  }
  if (response.status !== 200 && response.status !== 206) {
    if (final.origin === request.headersOrigin) throw await civitaiError(response, id, ctx);
    await response.body?.cancel();
    throw httpError(`CivitAI model version ${id}: download storage ${final.origin}`, response);
  }
  await response.body?.cancel();
  const name = filenameFromContentDisposition(response.headers.get('content-disposition'));
  assertLooksLikeModel(response, name ?? final.pathname, `CivitAI model version ${id}`);
  return { name, bytes: probedSize(response) };
}

function loginRequired(id: string, ctx: SourceContext): UserError {
  return new UserError(
    ctx.config.tokens.civitai
      ? `CivitAI model version ${id}: this model requires login and CivitAI refused CIVITAI_TOKEN: check the API key at civitai.com/user/account`
      : `CivitAI model version ${id}: this model requires login: set CIVITAI_TOKEN to an API key from civitai.com/user/account`,
  );
}

/** Maps a CivitAI error answer to a message that says what to do. */
async function civitaiError(response: Response, id: string, ctx: SourceContext): Promise<Error> {
  const body = await readErrorBody(response);
  switch (response.status) {
    case 400:
      return new UserError(`"${id}" is not a valid CivitAI model-version id: use the number after modelVersionId= in the model page's URL`);
    case 401:
      return loginRequired(id, ctx);
    case 403:
      if (body.deadline) {
        return new UserError(
          `CivitAI model version ${id} is in early access until ${body.deadline}: buy access on civitai.com with the account of CIVITAI_TOKEN, or wait until then`,
        );
      }
      return new UserError(`CivitAI model version ${id}: the account of CIVITAI_TOKEN has no access to this model${body.message ? ` (${body.message})` : ''}`);
    case 404:
      return new UserError(`CivitAI has no model version ${id}`);
    case 410:
      return new UserError(`CivitAI model version ${id} is archived and can no longer be downloaded: pick another version`);
    case 429:
      return new TransientError(`CivitAI rate limit reached for model version ${id}`, {
        retryAfterMs: retryAfterMs(response) ?? DEFAULT_RETRY_AFTER_MS,
      });
    default:
      return httpError(`CivitAI model version ${id}`, response);
  }
}

async function readErrorBody(response: Response): Promise<{ deadline?: string; message?: string }> {
  try {
    const body = (await response.json()) as { deadline?: unknown; message?: unknown };
    return {
      ...(typeof body.deadline === 'string' ? { deadline: body.deadline } : {}),
      ...(typeof body.message === 'string' ? { message: body.message } : {}),
    };
  } catch {
    return {};
  }
}
