/**
 * One Phoenix download in its own process, so its peak RSS is its own.
 * Prints {seconds, bytes, sha256, baselineRssKiB, peakRssKiB} as JSON.
 */
import { readFileSync } from 'node:fs';
import { downloadFile, type DownloadFileOptions } from '../src/download/engine.js';

function statusKiB(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1] ?? 0);
}

const options = JSON.parse(process.argv[2] ?? '{}') as DownloadFileOptions;
const baselineRssKiB = statusKiB('VmRSS');
const started = process.hrtime.bigint();
const result = await downloadFile(options);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(`${JSON.stringify({ seconds, ...result, baselineRssKiB, peakRssKiB: statusKiB('VmHWM') })}\n`);
