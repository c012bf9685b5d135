import { Worker } from 'node:worker_threads';
import type { RangeSet } from './ranges.js';

/**
 * The hashing thread. Plain JavaScript evaluated as a worker script, so it loads the same way from
 * the compiled build, tsx and vitest. It opens the part file read-only and, each time it is told
 * that the written prefix has grown, reads the new bytes back from the page cache through one
 * reused buffer and feeds them to SHA-256, then reports how far it got.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const hash = createHash('sha256');
const buffer = Buffer.allocUnsafe(workerData.readBytes);
let fd;
let hashed = 0;
let target = 0;
let finish = -1;
function fail(err) {
  parentPort.postMessage({ error: String(err && err.message ? err.message : err) });
  target = -1;
}
parentPort.on('message', (message) => {
  if (target < 0) return;
  if (message.until > target) target = message.until;
  if (message.finish !== undefined) finish = message.finish;
  try {
    if (fd === undefined && target > hashed) fd = openSync(workerData.path, 'r');
    while (hashed < target) {
      const bytesRead = readSync(fd, buffer, 0, Math.min(buffer.length, target - hashed), hashed);
      if (bytesRead <= 0) throw new Error('part file ends at ' + hashed + ', expected data up to ' + target);
      hash.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      hashed += bytesRead;
    }
    if (finish >= 0 && hashed === finish) {
      if (fd !== undefined) closeSync(fd);
      parentPort.postMessage({ hashed, digest: hash.digest('hex') });
      parentPort.close();
    } else {
      parentPort.postMessage({ hashed });
    }
  } catch (err) {
    fail(err);
  }
});
`;

const READ_BACK_BYTES = 1 << 20;

/**
 * SHA-256 of a file whose bytes arrive out of order over parallel connections, without a second
 * pass over the finished file and without hashing on the event loop's thread.
 *
 * Every received byte is written to the part file; whenever the contiguous written prefix grows,
 * a worker thread reads the new bytes back from the page cache and hashes them, so receiving and
 * writing run on one core and SHA-256 (the floor of a download's CPU time) on another. It pays
 * when a core is free; bench/RESULTS.md has the figures. The read-back is a memcpy from the page
 * cache done by the worker. On resume the same path re-hashes the prefix already on disk, since a
 * Node Hash cannot be serialised.
 */
export class OrderedHasher {
  private readonly worker: Worker;
  private frontier = 0;
  private asked = 0;
  private digestHex: string | undefined;
  private failure: Error | undefined;
  private waiters: { until: number; resolve: () => void; reject: (err: Error) => void }[] = [];

  constructor(
    partPath: string,
    /** Ranges already written to the part file; the owner calls drain() after adding to it. */
    private readonly written: RangeSet,
  ) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path: partPath, readBytes: READ_BACK_BYTES },
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    this.worker.unref();
    this.worker.on('message', (message: { hashed?: number; digest?: string; error?: string }) => {
      if (message.error !== undefined) this.fail(new Error(message.error));
      if (message.hashed !== undefined) this.frontier = message.hashed;
      if (message.digest !== undefined) this.digestHex = message.digest;
      this.settleWaiters();
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (this.digestHex === undefined) this.fail(new Error(`hash worker exited with code ${code}`));
    });
  }

  /** Length of the hashed prefix. */
  get hashed(): number {
    return this.frontier;
  }

  /** Tells the worker how far the written prefix now reaches. */
  drain(): void {
    if (this.failure) return;
    const onDisk = this.written.coveredUntil(this.asked);
    if (onDisk > this.asked) {
      this.asked = onDisk;
      this.worker.postMessage({ until: onDisk });
    }
  }

  /** Resolves with the hex digest once every byte of [0, total) has been hashed. */
  async digest(total: number): Promise<string> {
    if (this.failure) throw this.failure;
    const onDisk = this.written.coveredUntil(this.asked);
    if (onDisk < total) throw new Error(`hashed ${Math.min(onDisk, this.frontier)} bytes, expected ${total}`);
    this.worker.ref();
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ until: total, resolve, reject });
      this.asked = total;
      this.worker.postMessage({ until: total, finish: total });
      this.settleWaiters();
    });
    if (this.frontier !== total || this.digestHex === undefined) throw new Error(`hashed ${this.frontier} bytes, expected ${total}`);
    return this.digestHex;
  }

  /** Stops the worker; the digest, if not yet taken, is lost. */
  async close(): Promise<void> {
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.settleWaiters();
  }

  private settleWaiters(): void {
    this.waiters = this.waiters.filter((waiter) => {
      if (this.failure) waiter.reject(this.failure);
      else if (this.frontier >= waiter.until && this.digestHex !== undefined) waiter.resolve();
      else return true;
      return false;
    });
  }
}
