import { open, type FileHandle } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface StreamingUploadOptions {
  /** The file's size when known: parts grow so that no file needs more than S3's 10 000. */
  expectedBytes?: number;
  /** Parts uploading at once. Default 3. */
  concurrency?: number;
}

const MiB = 1024 * 1024;
/** S3's smallest part (5 MiB) with room; every part but the last has this size. */
const MIN_PART = 8 * MiB;
const MAX_PARTS = 9000;

/**
 * A multipart upload fed from a file that is still being written: `grow(n)` says the file holds
 * every byte of [0, n), and each full part of it is read back (from the page cache) and sent
 * while the download goes on. `finish(total)` sends the rest and completes the upload; until
 * then the object does not exist, so an unverified file never appears in the mirror.
 * A `grow` below an earlier one means the file was discarded and restarted: the upload starts
 * over too. Memory: one part buffer per part in flight.
 */
export class StreamingUpload {
  private readonly partBytes: number;
  private readonly concurrency: number;
  private uploadId: Promise<string> | undefined;
  private handle: Promise<FileHandle> | undefined;
  private readonly parts = new Map<number, CompletedPart>();
  private readonly inflight = new Set<Promise<void>>();
  private available = 0;
  private next = 0;
  private failure: Error | undefined;
  /** The file is shorter than it was said to be: it is being discarded; the next `grow` below says so. */
  private shrunk = false;

  constructor(
    private readonly client: S3Client,
    private readonly target: { bucket: string; key: string; file: string },
    options: StreamingUploadOptions = {},
  ) {
    const spread = options.expectedBytes ? Math.ceil(options.expectedBytes / MAX_PARTS / MiB) * MiB : 2 * MIN_PART;
    this.partBytes = Math.max(MIN_PART, spread);
    this.concurrency = options.concurrency ?? 3;
  }

  /** The file now holds [0, bytes). */
  grow(bytes: number): void {
    if (this.failure) return;
    if (bytes < this.available) this.restart();
    this.available = bytes;
    this.schedule();
  }

  /** Sends what is left of a `total`-byte file and completes the upload. Rejects if any part failed. */
  async finish(total: number): Promise<void> {
    this.grow(total);
    await this.settled();
    if (this.shrunk) this.failure ??= new Error(`${this.target.file} is shorter than the ${total} bytes it was said to hold`);
    if (this.failure) throw this.failure;
    if (this.uploadId === undefined) {
      // Small enough for one request: no multipart upload was started.
      await this.client.send(
        new PutObjectCommand({ Bucket: this.target.bucket, Key: this.target.key, Body: await this.read(0, total), ContentLength: total }),
      );
      await this.closeFile();
      return;
    }
    if (this.next < total) {
      this.startPart(this.next, total);
      this.next = total;
      await this.settled();
      if (this.failure) throw this.failure;
    }
    const uploadId = await this.uploadId;
    const parts = [...this.parts.values()].sort((a, b) => a.PartNumber! - b.PartNumber!);
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: this.target.bucket, Key: this.target.key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
    );
    await this.closeFile();
  }

  /** Gives the upload up; the parts sent so far are deleted by the store. */
  async abort(): Promise<void> {
    this.failure ??= new Error('upload aborted');
    await this.settled();
    await this.abortUpload(this.uploadId);
    this.uploadId = undefined;
    await this.closeFile();
  }

  private schedule(): void {
    while (!this.failure && !this.shrunk && this.inflight.size < this.concurrency && this.available - this.next >= this.partBytes) {
      this.startPart(this.next, this.next + this.partBytes);
      this.next += this.partBytes;
    }
  }

  private startPart(start: number, end: number): void {
    const number = Math.floor(start / this.partBytes) + 1;
    this.uploadId ??= this.create();
    const uploadId = this.uploadId;
    const part = (async () => {
      const id = await uploadId;
      const body = await this.read(start, end);
      const out = await this.client.send(
        new UploadPartCommand({ Bucket: this.target.bucket, Key: this.target.key, UploadId: id, PartNumber: number, Body: body, ContentLength: body.length }),
      );
      // A part of an upload given up by a restart is not part of this one.
      if (this.uploadId === uploadId) this.parts.set(number, { ETag: out.ETag, PartNumber: number });
    })()
      .catch((err: unknown) => {
        if (this.uploadId !== uploadId) return;
        if (err instanceof FileShrank) this.shrunk = true;
        else this.failure ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        this.inflight.delete(part);
        this.schedule();
      });
    this.inflight.add(part);
  }

  private async create(): Promise<string> {
    const out = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.target.bucket, Key: this.target.key }));
    if (!out.UploadId) throw new Error('the mirror started a multipart upload without an UploadId');
    return out.UploadId;
  }

  /** The file was discarded: drop what was sent and start from its first byte again. */
  private restart(): void {
    void this.abortUpload(this.uploadId);
    this.uploadId = undefined;
    this.parts.clear();
    this.next = 0;
    this.shrunk = false;
    // The new file is another inode: read it through a new handle.
    void this.closeFile().catch(() => undefined);
  }

  private async abortUpload(uploadId: Promise<string> | undefined): Promise<void> {
    const id = await uploadId?.catch(() => undefined);
    if (!id) return;
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.target.bucket, Key: this.target.key, UploadId: id }))
      .catch(() => undefined);
  }

  private async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private async read(start: number, end: number): Promise<Buffer> {
    this.handle ??= open(this.target.file, 'r');
    const handle = await this.handle;
    const buffer = Buffer.allocUnsafe(end - start);
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await handle.read(buffer, done, buffer.length - done, start + done);
      if (bytesRead === 0) throw new FileShrank(`${this.target.file} ends at ${start + done}, expected ${end} bytes`);
      done += bytesRead;
    }
    return buffer;
  }

  private async closeFile(): Promise<void> {
    const handle = await this.handle?.catch(() => undefined);
    this.handle = undefined;
    await handle?.close();
  }
}

/** The file holds fewer bytes than `grow` said: the download discarded it and starts over. */
class FileShrank extends Error {}
