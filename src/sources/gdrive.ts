import type { StoredModelSpec } from '../config/model-spec.js';
import { UserError } from '../lib/errors.js';
import { driveFileId, openDriveFile } from '../lib/gdrive.js';
import { assertLooksLikeModel, filenameFromContentDisposition } from '../lib/http.js';
import { sanitizeFilename } from '../lib/names.js';
import type { ModelSourceClient, ResolvedFile } from './types.js';

type GdriveSpec = Extract<StoredModelSpec, { source: 'gdrive' }>;

/**
 * Google Drive share links, fetched as gdown does: `uc?id=…&export=download` either answers the
 * file (Content-Disposition) or, for a file too large to virus-scan, a page whose form must be
 * submitted with a one-time `uuid`. Resolve reads that page and returns the confirmed URL without
 * requesting it, so the download itself is its one use.
 */
export const gdriveSource: ModelSourceClient<GdriveSpec> = {
  source: 'gdrive',
  async resolve(spec, ctx): Promise<ResolvedFile[]> {
    const id = driveFileId(spec.url);
    const step = await openDriveFile(id, ctx.config.endpoints, ctx.signal);
    if (step.kind === 'file') await step.response.body?.cancel();
    const offered = step.kind === 'file' ? filenameFromContentDisposition(step.response.headers.get('content-disposition')) : step.name;
    const name = spec.filename ?? sanitizeFilename(offered ?? '');
    if (!name) throw new UserError(`Google Drive file ${id} does not tell its file name: set "filename"`);
    let bytes: number | undefined;
    if (step.kind === 'file') {
      assertLooksLikeModel(step.response, name, `Google Drive file ${id}`);
      const length = step.response.headers.get('content-length');
      if (step.response.status === 200 && length && !step.response.headers.has('content-encoding')) bytes = Number(length);
    }
    return [
      {
        name,
        ...(bytes !== undefined ? { bytes } : {}),
        ...(spec.sha256 ? { sha256: spec.sha256 } : {}),
        request: { url: step.url, headers: {}, ...(step.kind === 'file' ? {} : { singleRequest: true }) },
      },
    ];
  },
};
