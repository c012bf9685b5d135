import { GetObjectCommand, HeadObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { MirrorConfig } from '../config/index.js';
import { MirrorUnavailable } from './errors.js';
import { StreamingUpload, type StreamingUploadOptions } from './upload.js';

/** How long a presigned read URL stays good: longer than any one file takes to download. */
const READ_URL_SECONDS = 12 * 3600;
const SHA256 = /^[0-9a-f]{64}$/;

export { MirrorUnavailable } from './errors.js';

/**
 * The S3-compatible model mirror: one object per file, named by its SHA-256
 * (`<prefix>/sha256/<hex>`), so the name says what the bytes must hash to and any pod can check
 * it. Holds no token of any source: only bytes, named by their hash.
 */
export class ModelMirror {
  private readonly client: S3Client;

  constructor(private readonly config: MirrorConfig) {
    this.client = new S3Client({
      region: config.region,
      // A copy: the SDK marks the credentials object it is given, and the configuration is frozen.
      credentials: { ...config.credentials },
      ...(config.endpoint ? { endpoint: config.endpoint, forcePathStyle: true } : {}),
      // R2, B2 and MinIO do not all take the SDK's newer default checksum headers and trailers;
      // integrity is the SHA-256 in the object's name, checked on every read.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  key(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return `${this.config.prefix ? `${this.config.prefix}/` : ''}sha256/${sha256}`;
  }

  /** `s3://bucket/key`, for messages. */
  where(sha256: string): string {
    return `s3://${this.config.bucket}/${this.key(sha256)}`;
  }

  /** The object's size, or undefined when the mirror does not hold it. Throws MirrorUnavailable when it cannot tell. */
  async head(sha256: string): Promise<{ bytes: number } | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.key(sha256) }));
      return { bytes: out.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return undefined;
      throw new MirrorUnavailable(`the model mirror did not answer for ${this.where(sha256)}: ${describe(err)}`, { cause: err });
    }
  }

  /**
   * A presigned GET URL for the download engine's ranged connections. It carries a signature and
   * the access key id in its query: it lives in the worker's memory only (the engine keeps a hash
   * of the request's identity, and messages show origin and path without the query).
   */
  readUrl(sha256: string): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.config.bucket, Key: this.key(sha256) }), {
      expiresIn: READ_URL_SECONDS,
    });
  }

  /** A multipart upload under `sha256`, fed from a file while it is still being written. */
  upload(sha256: string, file: string, options: StreamingUploadOptions = {}): StreamingUpload {
    return new StreamingUpload(this.client, { bucket: this.config.bucket, key: this.key(sha256), file }, options);
  }

  close(): void {
    this.client.destroy();
  }
}

function describe(err: unknown): string {
  if (err instanceof S3ServiceException) return `${err.name} (${err.$metadata.httpStatusCode ?? 'no status'})`;
  return err instanceof Error ? err.message : String(err);
}
