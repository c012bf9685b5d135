/**
 * What Phoenix's login proxy costs in front of ComfyUI: a 100 MiB upload and WebSocket round
 * trips, straight to the stand-in ComfyUI and through the proxy (signed-in session cookie), in the
 * same run, alternating. Prints a table and writes it into bench/RESULTS.md (its own section).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { WebSocket } from 'undici';
import { Gate } from '../src/access/gate.js';
import { startComfyProxy } from '../src/board/comfy-proxy.js';
import { startStandinComfy } from '../test/fixtures/standin-comfyui.js';
import { signIn } from '../test/fixtures/http-call.js';
import { freePort, makeWorkspace, testConfig } from '../test/helpers.js';

const MiB = 1024 * 1024;
const UPLOAD_BYTES = Number(process.env.BENCH_UPLOAD_MIB ?? 100) * MiB;
const UPLOADS = Number(process.env.BENCH_REPEAT ?? 5);
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 2000);
const SECTION = '<!-- proxy bench -->';
const here = path.dirname(fileURLToPath(import.meta.url));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** POSTs the body to /upload and resolves with the seconds until ComfyUI's answer, checking its hash. */
function upload(origin: string, body: Buffer, sha256: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request(`${origin}/upload?id=bench`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const answer = JSON.parse(Buffer.concat(chunks).toString()) as { sha256?: string };
        if (answer.sha256 !== sha256) reject(new Error(`upload through ${origin} arrived damaged: ${JSON.stringify(answer)}`));
        else resolve(Number(process.hrtime.bigint() - started) / 1e9);
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Mean microseconds per round trip of a small text message, after a warm-up. */
async function roundTrips(url: string, headers: Record<string, string>): Promise<number> {
  const socket = new WebSocket(url, { headers });
  const next = () => new Promise<string>((resolve) => socket.addEventListener('message', (e) => resolve(String(e.data)), { once: true }));
  await next(); // ComfyUI's greeting
  const message = 'x'.repeat(64);
  const trip = async () => {
    const answer = next();
    socket.send(message);
    if ((await answer) !== message) throw new Error('the WebSocket echo came back different');
  };
  for (let i = 0; i < 100; i++) await trip();
  const started = process.hrtime.bigint();
  for (let i = 0; i < ROUND_TRIPS; i++) await trip();
  const micros = Number(process.hrtime.bigint() - started) / 1e3 / ROUND_TRIPS;
  socket.close();
  return micros;
}

async function main(): Promise<void> {
  const ws = await makeWorkspace();
  const config = await testConfig({
    WORKSPACE: ws.dir,
    COMFYUI_PORT: String(await freePort()),
    COMFYUI_INTERNAL_PORT: String(await freePort()),
    PHOENIX_PORT: String(await freePort()),
    PHOENIX_PASSWORD: 'bench-password-123',
  });
  const log = pino({ level: 'silent' });
  const comfy = await startStandinComfy(ws.comfyDir, config.comfyui.listen.port);
  const gate = await Gate.open({ config, log });
  const proxy = await startComfyProxy({ config, gate, log, port: config.comfyui.port, host: '127.0.0.1' });
  const cookie = await signIn(proxy.url, 'admin', 'bench-password-123');
  const body = randomBytes(UPLOAD_BYTES);
  const sha256 = createHash('sha256').update(body).digest('hex');
  try {
    const direct: number[] = [];
    const proxied: number[] = [];
    let peakRss = 0;
    const baselineRss = process.memoryUsage().rss;
    for (let i = 0; i < UPLOADS; i++) {
      direct.push(await upload(comfy.url, body, sha256, {}));
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10);
      proxied.push(await upload(proxy.url, body, sha256, { cookie }));
      clearInterval(sampler);
    }
    const wsDirect: number[] = [];
    const wsProxied: number[] = [];
    for (let i = 0; i < 3; i++) {
      wsDirect.push(await roundTrips(`${comfy.url.replace('http', 'ws')}/ws`, {}));
      wsProxied.push(await roundTrips(`${proxy.url.replace('http', 'ws')}/ws`, { cookie }));
    }

    const up = { direct: median(direct), proxied: median(proxied) };
    const rt = { direct: median(wsDirect), proxied: median(wsProxied) };
    const report = [
      `Measured ${new Date().toISOString()} by \`npm run bench:proxy\`.`,
      '',
      '```',
      `${os.cpus().length} CPUs, node ${process.version}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
      `stand-in ComfyUI (Python, test/fixtures/comfyui/main.py) on 127.0.0.1; proxy = Phoenix's login proxy with a session cookie`,
      '',
      `| what | ComfyUI direct | through the proxy | ratio |`,
      `|---|---:|---:|---:|`,
      `| upload ${UPLOAD_BYTES / MiB} MiB, hashed by ComfyUI (median of ${UPLOADS}) | ${up.direct.toFixed(3)} s | ${up.proxied.toFixed(3)} s | ${(up.proxied / up.direct).toFixed(2)} |`,
      `| WebSocket round trip, 64-byte message (mean of ${ROUND_TRIPS}, median of 3 runs) | ${rt.direct.toFixed(0)} µs | ${rt.proxied.toFixed(0)} µs | ${(rt.proxied / rt.direct).toFixed(2)} |`,
      `bench process (client and proxy) peak RSS during proxied uploads: ${((peakRss - baselineRss) / MiB).toFixed(1)} MiB above its level with the ${UPLOAD_BYTES / MiB} MiB body in memory`,
      '```',
    ];
    process.stdout.write(`${report.join('\n')}\n`);
    await writeSection(report.join('\n'));
  } finally {
    await proxy.close();
    await comfy.stop();
    await ws.cleanup();
  }
}

/** Replaces this bench's section of RESULTS.md (kept last, after the download bench's notes, which `npm run bench` preserves). */
async function writeSection(text: string): Promise<void> {
  const file = path.join(here, 'RESULTS.md');
  const previous = await readFile(file, 'utf8').catch(() => '');
  const kept = previous.includes(SECTION) ? previous.slice(0, previous.indexOf(SECTION)) : `${previous.trimEnd()}\n\n`;
  await writeFile(file, `${kept}${SECTION}\n# Login proxy benchmark\n\n${text}\n`);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
