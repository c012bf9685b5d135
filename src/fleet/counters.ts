import type { RedisClient } from '../lib/redis-client.js';

/** Where a file's bytes came from. */
export type ByteSource = 'origin' | 'mirror';

export interface CounterValues {
  /** Bytes received, by model source (civitai, huggingface, url, gdrive) and by origin or mirror. */
  bytes: { source: string; from: ByteSource; value: number }[];
  /** Seconds spent receiving those bytes, by origin or mirror (throughput = bytes / seconds). */
  seconds: { from: ByteSource; value: number }[];
  /** Files whose SHA-256 was not the one expected, by origin or mirror. */
  verificationFailures: { from: ByteSource; value: number }[];
}

/**
 * The pod's download counters for GET /metrics. Kept in Redis (one hash under the pod's prefix)
 * because in the image the workers count and the board serves them, in two processes.
 */
export class PodCounters {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async addDownload(source: string, from: ByteSource, bytes: number, seconds: number): Promise<void> {
    await this.redis
      .multi()
      .hincrby(this.key(), `bytes|${source}|${from}`, Math.round(bytes))
      .hincrbyfloat(this.key(), `seconds|${from}`, seconds)
      .exec();
  }

  async addVerificationFailure(from: ByteSource): Promise<void> {
    await this.redis.hincrby(this.key(), `verification-failures|${from}`, 1);
  }

  async read(): Promise<CounterValues> {
    const all = await this.redis.hgetall(this.key());
    const out: CounterValues = { bytes: [], seconds: [], verificationFailures: [] };
    for (const [field, raw] of Object.entries(all)) {
      const [kind, a, b] = field.split('|');
      const value = Number(raw);
      if (kind === 'bytes' && a && (b === 'origin' || b === 'mirror')) out.bytes.push({ source: a, from: b, value });
      else if (kind === 'seconds' && (a === 'origin' || a === 'mirror')) out.seconds.push({ from: a, value });
      else if (kind === 'verification-failures' && (a === 'origin' || a === 'mirror')) out.verificationFailures.push({ from: a, value });
    }
    return out;
  }

  private key(): string {
    return `${this.prefix}:pod:counters`;
  }
}
