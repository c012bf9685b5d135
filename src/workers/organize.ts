import path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import { chooseCategory } from '../organize/category.js';
import { publishFile } from '../organize/publish.js';
import type { DownloadResult, JobName, OrganizeResult } from '../queue/jobs.js';
import { jobLogger, trustedModelId, type Handler } from './context.js';

/**
 * organize (the checksum gate): publishes each downloaded file into its ComfyUI folder when its
 * size and SHA-256 match what was published. Runs after its download, also when that failed for
 * good, so the failure is reported here with its reason.
 */
export const organizeModel: Handler<typeof JobName.OrganizeModel> = async (job, data, deps): Promise<OrganizeResult> => {
  const log = jobLogger(deps, job).child({ model: data.label });
  const id = trustedModelId(data);
  const failures = Object.values(await job.getIgnoredChildrenFailures());
  if (failures.length > 0) throw new UnrecoverableError(`download failed: ${failures.join('; ')}`);
  const download = Object.values(await job.getChildrenValues<DownloadResult>())[0];
  if (!download) throw new UnrecoverableError('the download job handed over no result');

  const files: OrganizeResult['files'] = [];
  for (const file of download.files) {
    const category = file.publishedPath
      ? path.basename(path.dirname(file.publishedPath))
      : await chooseCategory({
          ...(data.spec.category ? { specCategory: data.spec.category } : {}),
          ...(file.sourceCategory ? { sourceCategory: file.sourceCategory } : {}),
          file: file.tempPath ?? '',
          name: file.name,
        });
    const target = await publishFile({
      modelId: id,
      file,
      category,
      modelsRoot: deps.config.modelsRoot,
      overwrite: data.spec.overwrite ?? false,
      record: deps.record,
    });
    log.info({ path: target, sha256: file.sha256 }, 'verified and published');
    files.push({ name: path.basename(target), path: target, category, bytes: file.bytes, sha256: file.sha256 });
  }
  return { files };
};
