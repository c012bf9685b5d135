/**
 * Phoenix's downloadFile against aria2c and curl on the same machine, in the same run, from a
 * local CDN fixture: first capped per connection (like a real CDN), then unthrottled loopback
 * against `openssl dgst -sha256` over the same bytes. Prints a table and writes bench/RESULTS.md.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCdnFixture } from '../test/fixtures/cdn-server.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_MIB ?? 400) * MiB;
const CAP = 8 * 1000 * 1000;
const CONNECTIONS = 16;
const here = path.dirname(fileURLToPath(import.meta.url));

interface PhoenixRun {
  seconds: number;
  processSeconds: number;
  sha256: string;
  baselineRssKiB: number;
  peakRssKiB: number;
}

async function timed(file: string, args: string[]): Promise<{ seconds: number; stdout: string }> {
  const started = process.hrtime.bigint();
  const { stdout } = await run(file, args, { maxBuffer: 1 << 20 });
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout };
}

async function phoenix(url: string, partPath: string, sha256: string): Promise<PhoenixRun> {
  const options = {
    request: { url, headers: {} },
    partPath,
    expectedBytes: SIZE,
    expectedSha256: sha256,
    connections: CONNECTIONS,
    stallTimeoutMs: 60_000,
  };
  const child = path.join(here, 'phoenix-child.ts');
  const { seconds, stdout } = await timed(process.execPath, ['--import', 'tsx', child, JSON.stringify(options)]);
  return { ...(JSON.parse(stdout) as Omit<PhoenixRun, 'processSeconds'>), processSeconds: seconds };
}

async function aria2c(url: string, dir: string, name: string): Promise<number> {
  const args = ['-x16', '-s16', '-k1M', '--file-allocation=none', '--allow-overwrite=true', '--auto-file-renaming=false'];
  return (await timed('aria2c', [...args, '-q', '-d', dir, '-o', name, url])).seconds;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-bench-'));
  const cdn = await startCdnFixture({ files: { '/model.bin': SIZE }, faults: { bytesPerSecond: CAP } });
  const url = cdn.url('/model.bin');
  const sha256 = cdn.sha256('/model.bin');
  const fresh = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
  };
  const lines: string[] = [];
  const log = (line: string): void => {
    lines.push(line);
    console.log(line);
  };
  try {
    log(`file ${SIZE / MiB} MiB, ${CONNECTIONS} connections, ${os.cpus().length} CPUs, node ${process.version}`);
    log('');
    log(`capped CDN: ${CAP / 1e6} MB/s per connection`);
    const p = await phoenix(url, path.join(dir, '.phoenix-tmp', 'p.part'), sha256);
    if (p.sha256 !== sha256) throw new Error('phoenix returned a wrong sha256');
    await fresh();
    const a = await aria2c(url, dir, 'a.bin');
    const s = (await timed('sha256sum', [path.join(dir, 'a.bin')])).seconds;
    await fresh();
    const c = (await timed('curl', ['-s', '-o', path.join(dir, 'c.bin'), url])).seconds;
    await fresh();
    const extraMiB = (p.peakRssKiB - p.baselineRssKiB) / 1024;
    log('| tool | seconds | Phoenix ratio |');
    log('|---|---:|---:|');
    log(`| Phoenix downloadFile (download + verify) | ${p.seconds.toFixed(2)} | 1.00 |`);
    log(`| Phoenix, whole process incl. node start | ${p.processSeconds.toFixed(2)} | |`);
    log(`| aria2c -x16 -s16 -k1M | ${a.toFixed(2)} | ${(p.seconds / a).toFixed(2)} (target ≤ 1.05) |`);
    log(`| aria2c + sha256sum | ${(a + s).toFixed(2)} | ${(p.seconds / (a + s)).toFixed(2)} (target ≤ 0.80) |`);
    log(`| curl (one connection) | ${c.toFixed(2)} | ${(p.seconds / c).toFixed(2)} |`);
    log(`Phoenix peak RSS ${(p.peakRssKiB / 1024).toFixed(1)} MiB, ${extraMiB.toFixed(1)} MiB above its idle baseline`);
    log('');

    cdn.setFaults({});
    log('unthrottled loopback');
    const q = await phoenix(url, path.join(dir, '.phoenix-tmp', 'q.part'), sha256);
    const o = (await timed('openssl', ['dgst', '-sha256', path.join(dir, '.phoenix-tmp', 'q.part')])).seconds;
    await fresh();
    const b = await aria2c(url, dir, 'b.bin');
    await fresh();
    log('| tool | seconds | Phoenix ratio |');
    log('|---|---:|---:|');
    log(`| Phoenix downloadFile (download + verify) | ${q.seconds.toFixed(2)} | 1.00 |`);
    log(`| openssl dgst -sha256 (same bytes, page cache) | ${o.toFixed(2)} | ${(q.seconds / o).toFixed(2)} (target ≤ 1.2) |`);
    log(`| aria2c -x16 -s16 -k1M (no hash) | ${b.toFixed(2)} | ${(q.seconds / b).toFixed(2)} |`);
    log(`Phoenix peak RSS ${(q.peakRssKiB / 1024).toFixed(1)} MiB, ${((q.peakRssKiB - q.baselineRssKiB) / 1024).toFixed(1)} MiB above its idle baseline`);
  } finally {
    await cdn.close();
    await rm(dir, { recursive: true, force: true });
  }
  const report = ['# Download benchmark', '', `Measured ${new Date().toISOString()} by \`npm run bench\`.`, '', '```', ...lines, '```', ''];
  await writeFile(path.join(here, 'RESULTS.md'), report.join('\n'));
}

await main();
