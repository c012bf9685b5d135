/**
 * Phoenix downloads in their own process, so its peak RSS is their own. With a second argument N,
 * runs N copies of the download at once (as DOWNLOAD_CONCURRENCY=N would), each to its own part
 * file. Prints {seconds, bytes, sha256, baselineRssKiB, peakRssKiB} as JSON; sha256 is the first
 * download's, and the run fails if any copy got a different one.
 */
import { readFileSync } from 'node:fs';
import { downloadFile, type DownloadFileOptions } from '../src/download/engine.js';

function statusKiB(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1] ?? 0);
}

const options = JSON.parse(process.argv[2] ?? '{}') as DownloadFileOptions;
const copies = Number(process.argv[3] ?? 1);
const baselineRssKiB = statusKiB('VmRSS');
const started = process.hrtime.bigint();
const results = await Promise.all(
  Array.from({ length: copies }, (_, i) => downloadFile({ ...options, partPath: i === 0 ? options.partPath : `${options.partPath}.${i}` })),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const [first] = results;
if (results.some((result) => result.sha256 !== first!.sha256)) throw new Error('the copies disagree on the sha256');
process.stdout.write(`${JSON.stringify({ seconds, ...first, baselineRssKiB, peakRssKiB: statusKiB('VmHWM') })}\n`);
