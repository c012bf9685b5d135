/**
 * What Phoenix's login proxy costs in front of ComfyUI: a 100 MiB upload and WebSocket round
 * trips, straight to the stand-in ComfyUI and through the proxy (signed-in session cookie), in the
 * same run, alternating which goes first. Besides wall time it reports this process's CPU time:
 * the client alone when direct, client and proxy when proxied, so the difference is the proxy's
 * own cost. A bare TCP relay in Node (bytes piped, no HTTP, no login) runs alongside as the
 * floor of any proxy written in Node. Prints a table and writes it into bench/RESULTS.md (its own
 * section, last).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { WebSocket } from 'undici';
import { Gate } from '../src/access/gate.js';
import { startComfyProxy } from '../src/board/comfy-proxy.js';
import { signIn } from '../test/fixtures/http-call.js';
import { startStandinComfy } from '../test/fixtures/standin-comfyui.js';
import { freePort, makeWorkspace, testConfig } from '../test/helpers.js';

const MiB = 1024 * 1024;
const UPLOAD_BYTES = Number(process.env.BENCH_UPLOAD_MIB ?? 100) * MiB;
const UPLOADS = Number(process.env.BENCH_REPEAT ?? 7);
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 2000);
const WS_RUNS = 6;
const SECTION = '<!-- proxy bench -->';
const here = path.dirname(fileURLToPath(import.meta.url));

interface Cost {
  /** Wall time. */
  seconds: number;
  /** This process's CPU time (user + system). */
  cpuSeconds: number;
}

async function measure(work: () => Promise<void>): Promise<Cost> {
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await work();
  const used = process.cpuUsage(cpu);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, cpuSeconds: (used.user + used.system) / 1e6 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs each, in an order that rotates with `i`, so a change in the machine's load hits all alike. */
async function rotate(i: number, runs: (() => Promise<void>)[]): Promise<void> {
  for (let k = 0; k < runs.length; k++) await runs[(i + k) % runs.length]!();
}

/** The floor: a TCP relay that only pipes bytes both ways. */
async function startRelay(port: number): Promise<{ url: string; close(): void }> {
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    // Small frames leave at once, as the proxy's sockets do (httpxy sets TCP_NODELAY).
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() };
}

/** POSTs the body to /upload and resolves once ComfyUI answers, checking the hash it computed. */
function upload(origin: string, body: Buffer, sha256: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
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
        else resolve();
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** ROUND_TRIPS round trips of a small text message after a warm-up; the cost of those alone. */
async function roundTrips(url: string, headers: Record<string, string>): Promise<Cost> {
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
  const cost = await measure(async () => {
    for (let i = 0; i < ROUND_TRIPS; i++) await trip();
  });
  socket.close();
  return cost;
}

interface Summary {
  direct: number;
  relay: number;
  proxied: number;
  /** This process's CPU beyond the direct runs': the relay's, the proxy's. */
  relayCpu: number;
  proxyCpu: number;
}

/** Medians, in a unit of `scale` per second. */
function summary(costs: { direct: Cost[]; relay: Cost[]; proxied: Cost[] }, scale: number): Summary {
  const wall = (c: Cost[]) => median(c.map((x) => x.seconds)) * scale;
  const cpu = (c: Cost[]) => (median(c.map((x) => x.cpuSeconds)) - median(costs.direct.map((x) => x.cpuSeconds))) * scale;
  return { direct: wall(costs.direct), relay: wall(costs.relay), proxied: wall(costs.proxied), relayCpu: cpu(costs.relay), proxyCpu: cpu(costs.proxied) };
}

function row(what: string, s: Summary, unit: string, digits: number): string {
  const f = (v: number) => `${v.toFixed(digits)} ${unit}`;
  return `| ${what} | ${f(s.direct)} | ${f(s.relay)} | ${f(s.proxied)} | ${(s.proxied / s.direct).toFixed(2)} | ${(s.proxied / s.relay).toFixed(2)} | ${f(s.relayCpu)} / ${f(s.proxyCpu)} |`;
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
  const relay = await startRelay(comfy.port);
  const cookie = await signIn(proxy.url, 'admin', 'bench-password-123');
  const body = randomBytes(UPLOAD_BYTES);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  try {
    const uploads = { direct: [] as Cost[], relay: [] as Cost[], proxied: [] as Cost[] };
    let peakRss = 0;
    const baselineRss = process.memoryUsage().rss;
    for (let i = 0; i < UPLOADS; i++) {
      await rotate(i, [
        async () => void uploads.direct.push(await measure(() => upload(comfy.url, body, sha256, {}))),
        async () => void uploads.relay.push(await measure(() => upload(relay.url, body, sha256, {}))),
        async () => {
          const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10);
          uploads.proxied.push(await measure(() => upload(proxy.url, body, sha256, { cookie })));
          clearInterval(sampler);
        },
      ]);
    }
    const trips = { direct: [] as Cost[], relay: [] as Cost[], proxied: [] as Cost[] };
    const wsUrl = (origin: string) => `${origin.replace('http', 'ws')}/ws`;
    for (let i = 0; i < WS_RUNS; i++) {
      await rotate(i, [
        async () => void trips.direct.push(await roundTrips(wsUrl(comfy.url), {})),
        async () => void trips.relay.push(await roundTrips(wsUrl(relay.url), {})),
        async () => void trips.proxied.push(await roundTrips(wsUrl(proxy.url), { cookie })),
      ]);
    }
    const report = [
      `Measured ${new Date().toISOString()} by \`npm run bench:proxy\`.`,
      '',
      '```',
      `${os.cpus().length} CPUs, node ${process.version}, load average at start ${load} (at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`,
      `stand-in ComfyUI (Python, test/fixtures/comfyui/main.py) on 127.0.0.1; the proxy signed in with a session cookie;`,
      `bare TCP relay: a Node net server piping bytes both ways (no HTTP, no login), the floor of any proxy in Node;`,
      `extra CPU: this process's CPU beyond the direct runs' (which is the client's alone), i.e. the relay's and the proxy's own work`,
      '',
      `| what (medians) | ComfyUI direct | bare TCP relay (floor) | Phoenix's proxy | proxy / direct | proxy / relay | extra CPU: relay / proxy |`,
      `|---|---:|---:|---:|---:|---:|---:|`,
      row(`upload ${UPLOAD_BYTES / MiB} MiB, hashed by ComfyUI (${UPLOADS} each)`, summary(uploads, 1), 's', 3),
      row(`WebSocket round trip, 64-byte message (${WS_RUNS} runs of ${ROUND_TRIPS})`, summary(trips, 1e6 / ROUND_TRIPS), 'µs', 0),
      `peak RSS of this process (client and proxy) during proxied uploads: ${((peakRss - baselineRss) / MiB).toFixed(1)} MiB above its level with the ${UPLOAD_BYTES / MiB} MiB body in memory`,
      '```',
    ];
    process.stdout.write(`${report.join('\n')}\n`);
    await writeSection(report.join('\n'));
  } finally {
    relay.close();
    await proxy.close();
    await comfy.stop();
    await ws.cleanup();
  }
}

/** Replaces this bench's section of RESULTS.md, kept last: `npm run bench` keeps what follows its notes marker. */
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
