/**
 * Phoenix's downloadFile against aria2c and curl on the same machine, in the same run, from a
 * local CDN fixture: first capped per connection (like a real CDN), then unthrottled loopback
 * against `openssl dgst -sha256` over the same bytes. Prints a table and writes bench/RESULTS.md.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCdnFixture } from '../test/fixtures/cdn-server.js';
import { startNginx } from './nginx.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_MIB ?? 400) * MiB;
const CAP = 8 * 1000 * 1000;
const CONNECTIONS = 16;
/** Unthrottled loopback runs per tool; the table shows each tool's median. */
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const NOTES_MARKER = '<!-- notes -->';
const here = path.dirname(fileURLToPath(import.meta.url));

interface PhoenixRun {
  seconds: number;
  processSeconds: number;
  sha256: string;
  baselineRssKiB: number;
  peakRssKiB: number;
}

async function timed(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ seconds: number; stdout: string }> {
  const started = process.hrtime.bigint();
  const { stdout } = await run(file, args, { maxBuffer: 1 << 20, ...(env ? { env } : {}) });
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function phoenix(
  url: string,
  partPath: string,
  sha256: string,
  connections = CONNECTIONS,
  copies = 1,
  env?: NodeJS.ProcessEnv,
): Promise<PhoenixRun> {
  const options = {
    request: { url, headers: {} },
    partPath,
    expectedBytes: SIZE,
    expectedSha256: sha256,
    connections,
    stallTimeoutMs: 60_000,
  };
  const child = path.join(here, 'phoenix-child.ts');
  const { seconds, stdout } = await timed(process.execPath, ['--import', 'tsx', child, JSON.stringify(options), String(copies)], env);
  return { ...(JSON.parse(stdout) as Omit<PhoenixRun, 'processSeconds'>), processSeconds: seconds };
}

async function nodeReceive(url: string, connections: number): Promise<number> {
  const child = path.join(here, 'receive-child.ts');
  const { stdout } = await timed(process.execPath, ['--import', 'tsx', child, url, String(SIZE), String(connections)]);
  return (JSON.parse(stdout) as { seconds: number }).seconds;
}

async function aria2c(url: string, dir: string, name: string, extra: string[] = []): Promise<number> {
  const args = ['-x16', '-s16', '-k1M', '--file-allocation=none', '--allow-overwrite=true', '--auto-file-renaming=false'];
  return (await timed('aria2c', [...args, ...extra, '-q', '-d', dir, '-o', name, url])).seconds;
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
  const cleanups: (() => Promise<void>)[] = [];
  const lines: string[] = [];
  const log = (line: string): void => {
    lines.push(line);
    console.log(line);
  };
  try {
    const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    log(`file ${SIZE / MiB} MiB, ${CONNECTIONS} connections, ${os.cpus().length} CPUs, node ${process.version}, load average at start ${load}`);
    log('');
    if (process.env.BENCH_SKIP_CAPPED !== '1') {
      await capped();
      await cappedTls();
    }
    await loopback();
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await cdn.close();
    await rm(dir, { recursive: true, force: true });
  }

  async function capped(): Promise<void> {
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
  }

  /** The capped case again over https, as real model CDNs serve it, with a certificate made for the run. */
  async function cappedTls(): Promise<void> {
    const certs = path.join(os.tmpdir(), `phoenix-bench-tls-${process.pid}`);
    await mkdir(certs, { recursive: true });
    cleanups.push(() => rm(certs, { recursive: true, force: true }));
    const [key, cert] = [path.join(certs, 'key.pem'), path.join(certs, 'cert.pem')];
    await run('openssl', [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', key, '-out', cert],
      ...['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    ]);
    const tls = await startCdnFixture({
      files: { '/model.bin': SIZE },
      faults: { bytesPerSecond: CAP },
      tls: { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') },
    });
    cleanups.push(() => tls.close());
    const tlsUrl = tls.url('/model.bin');
    log(`capped CDN over https: ${CAP / 1e6} MB/s per connection, TLS on every connection`);
    await fresh();
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: cert };
    const p = await phoenix(tlsUrl, path.join(dir, '.phoenix-tmp', 'p.part'), tls.sha256('/model.bin'), CONNECTIONS, 1, env);
    if (p.sha256 !== tls.sha256('/model.bin')) throw new Error('phoenix returned a wrong sha256');
    await fresh();
    const a = await aria2c(tlsUrl, dir, 'a.bin', [`--ca-certificate=${cert}`]);
    const s = (await timed('sha256sum', [path.join(dir, 'a.bin')])).seconds;
    await fresh();
    log('| tool | seconds | Phoenix ratio |');
    log('|---|---:|---:|');
    log(`| Phoenix downloadFile (download + verify) | ${p.seconds.toFixed(2)} | 1.00 |`);
    log(`| aria2c -x16 -s16 -k1M | ${a.toFixed(2)} | ${(p.seconds / a).toFixed(2)} (target ≤ 1.05) |`);
    log(`| aria2c + sha256sum | ${(a + s).toFixed(2)} | ${(p.seconds / (a + s)).toFixed(2)} (target ≤ 0.80) |`);
    log(`Phoenix peak RSS ${(p.peakRssKiB / 1024).toFixed(1)} MiB, ${((p.peakRssKiB - p.baselineRssKiB) / 1024).toFixed(1)} MiB above its idle baseline`);
    log('');
  }

  async function loopback(): Promise<void> {
    cdn.setFaults({});
    const served = path.join(os.tmpdir(), `phoenix-bench-www-${process.pid}`);
    await mkdir(served, { recursive: true });
    cleanups.push(() => rm(served, { recursive: true, force: true }));
    await cdn.writeTo('/model.bin', path.join(served, 'model.bin'));
    const nginx = await startNginx(served, path.join(served, '.nginx'));
    if (nginx) cleanups.push(() => nginx.close());
    const fast = nginx ? nginx.url('model.bin') : url;
    log(`unthrottled loopback from ${nginx ? 'nginx (sendfile)' : 'the Node fixture (nginx not installed)'}, median of ${REPEAT} runs each`);
    const runs: Record<'q' | 'q4' | 'q1' | 'o' | 'b' | 'r' | 'cn' | 'cf' | 'ct', number[]> = {
      ...{ q: [], q4: [], q1: [], o: [], b: [] },
      ...{ r: [], cn: [], cf: [], ct: [] },
    };
    let peak = { extra: 0, peak: 0 };
    const part = path.join(dir, '.phoenix-tmp', 'q.part');
    for (let i = 0; i < REPEAT; i++) {
      for (const [key, connections] of [['q', CONNECTIONS], ['q4', 4], ['q1', 1]] as const) {
        await fresh();
        const q = await phoenix(fast, part, sha256, connections);
        if (q.sha256 !== sha256) throw new Error('phoenix returned a wrong sha256');
        runs[key].push(q.seconds);
        if (key === 'q') {
          const extra = (q.peakRssKiB - q.baselineRssKiB) / 1024;
          if (extra > peak.extra) peak = { extra, peak: q.peakRssKiB / 1024 };
          runs.o.push((await timed('openssl', ['dgst', '-sha256', part])).seconds);
        }
      }
      await fresh();
      runs.b.push(await aria2c(fast, dir, 'b.bin'));
      // Floors: what receiving alone, and receiving plus writing, cost on this machine.
      runs.r.push(await nodeReceive(fast, CONNECTIONS));
      runs.cn.push((await timed('curl', ['-s', '-o', '/dev/null', fast])).seconds);
      await fresh();
      runs.cf.push((await timed('curl', ['-s', '-o', path.join(dir, 'c.bin'), fast])).seconds);
      await fresh();
      const tee = `curl -s '${fast}' | tee '${path.join(dir, 't.bin')}' | openssl dgst -sha256`;
      runs.ct.push((await timed('bash', ['-o', 'pipefail', '-c', tee])).seconds);
    }
    // Memory per active download: three files at once in one process, as DOWNLOAD_CONCURRENCY=3 runs them.
    let together = 0;
    for (let i = 0; i < REPEAT; i++) {
      await fresh();
      const t = await phoenix(fast, part, sha256, CONNECTIONS, 3);
      if (t.sha256 !== sha256) throw new Error('phoenix returned a wrong sha256');
      together = Math.max(together, (t.peakRssKiB - t.baselineRssKiB) / 1024);
    }
    await fresh();
    const [q, q4, q1, o, b] = [runs.q, runs.q4, runs.q1, runs.o, runs.b].map(median) as [number, number, number, number, number];
    const [r, cn, cf, ct] = [runs.r, runs.cn, runs.cf, runs.ct].map(median) as [number, number, number, number];
    log('| tool | seconds | Phoenix ratio |');
    log('|---|---:|---:|');
    log(`| Phoenix downloadFile (download + verify), ${CONNECTIONS} connections | ${q.toFixed(2)} | 1.00 |`);
    log(`| Phoenix, 4 connections | ${q4.toFixed(2)} | |`);
    log(`| Phoenix, 1 connection | ${q1.toFixed(2)} | |`);
    log(`| openssl dgst -sha256 (same bytes, page cache) | ${o.toFixed(2)} | ${(q / o).toFixed(2)} (target ≤ 1.2) |`);
    log(`| aria2c -x16 -s16 -k1M (no hash) | ${b.toFixed(2)} | ${(q / b).toFixed(2)} |`);
    log(`| curl \\| tee file \\| openssl dgst (download with inline hash, one connection) | ${ct.toFixed(2)} | ${(q / ct).toFixed(2)} |`);
    log('');
    log('floors on this machine (nothing hashed), each also as a multiple of openssl dgst');
    log('| what | seconds | × openssl |');
    log('|---|---:|---:|');
    log(`| curl -o /dev/null (receive only, C) | ${cn.toFixed(2)} | ${(cn / o).toFixed(2)} |`);
    log(`| curl -o file (receive and write, C) | ${cf.toFixed(2)} | ${(cf / o).toFixed(2)} |`);
    log(`| Phoenix's Connector, ${CONNECTIONS} connections, bytes dropped (receive only, Node) | ${r.toFixed(2)} | ${(r / o).toFixed(2)} |`);
    log(`Phoenix (${CONNECTIONS} connections) peak RSS ${peak.peak.toFixed(1)} MiB, ${peak.extra.toFixed(1)} MiB above its idle baseline (worst run)`);
    log(`Three such downloads at once in one process: ${together.toFixed(1)} MiB above the baseline, ${(together / 3).toFixed(1)} MiB per active download (worst run)`);
  }
  if (process.env.BENCH_SKIP_CAPPED === '1') return;
  const resultsPath = path.join(here, 'RESULTS.md');
  // Everything from the notes marker on is written by hand and kept across runs.
  const previous = await readFile(resultsPath, 'utf8').catch(() => '');
  const notes = previous.includes(NOTES_MARKER) ? previous.slice(previous.indexOf(NOTES_MARKER)) : '';
  const report = ['# Download benchmark', '', `Measured ${new Date().toISOString()} by \`npm run bench\`.`, '', '```', ...lines, '```', ''];
  await writeFile(resultsPath, report.join('\n') + (notes ? `\n${notes}` : ''));
}

await main();
