/**
 * A fleet of four pods (one Redis, one S3-compatible mirror) against four independent pods (each
 * its own Redis, no mirror), in the same run, provisioning the same models from a CDN that caps
 * each connection like a real one. Measures the bytes the origin sent and the time until every pod
 * is ready. Prints a table and writes it into bench/RESULTS.md.
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { startCdnFixture, type CdnFixture } from '../test/fixtures/cdn-server.js';
import { startTestRedis } from '../test/fixtures/redis.js';
import { startTestS3 } from '../test/fixtures/s3-server.js';
import { freePort, makeWorkspace, writeManifest, type Workspace } from '../test/helpers.js';

const MiB = 1024 * 1024;
const TOTAL_MIB = Number(process.env.BENCH_FLEET_MIB ?? 192);
/** Two models: three quarters and one quarter of the total. */
const FILES = { '/checkpoint.safetensors': Math.round(TOTAL_MIB * 0.75) * MiB, '/lora.safetensors': Math.round(TOTAL_MIB * 0.25) * MiB };
const MODEL_BYTES = Object.values(FILES).reduce((a, b) => a + b, 0);
const CAP = 8 * 1000 * 1000;
const PODS = 4;
const PASSWORD = 'bench-fleet-password';
const here = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(here, '..');
const MARK = ['<!-- fleet -->', '<!-- /fleet -->'] as const;

interface Outcome {
  seconds: number;
  originBytes: number;
}

async function provision(variant: 'independent' | 'fleet'): Promise<Outcome> {
  const cdn = await startCdnFixture({ files: FILES, faults: { bytesPerSecond: CAP } });
  const redis = variant === 'fleet' ? await startTestRedis() : undefined;
  const s3 = variant === 'fleet' ? await startTestS3() : undefined;
  const manifest = await writeManifest(
    `[models.checkpoints.base]\nsource = "url"\nurl = "${cdn.url('/checkpoint.safetensors')}"\nsha256 = "${cdn.sha256('/checkpoint.safetensors')}"\n\n` +
      `[models.loras]\ndetail = "${cdn.url('/lora.safetensors')}"\n`,
  );
  const pods: { ws: Workspace; port: number; child: ResultPromise }[] = [];
  try {
    const started = performance.now();
    for (let i = 0; i < PODS; i++) {
      const ws = await makeWorkspace();
      const port = await freePort();
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '',
        HOME: ws.dir,
        WORKSPACE: ws.dir,
        PHOENIX_PORT: String(port),
        COMFYUI_PORT: String(await freePort()),
        PHOENIX_PASSWORD: PASSWORD,
        PHOENIX_POD_ID: `bench-${i}`,
        PROVISION_URL: manifest,
        ...(redis && s3 ? { REDIS_URL: redis.url, ...s3.env } : {}),
      };
      const child = execa('node', ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts'), 'up'], { cwd: REPO_ROOT, env, extendEnv: false, reject: false });
      pods.push({ ws, port, child });
    }
    const auth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
    const deadline = Date.now() + 600_000;
    for (const pod of pods) {
      for (;;) {
        const s = (await fetch(`http://127.0.0.1:${pod.port}/status`, { headers: auth })
          .then((r) => r.json())
          .catch(() => undefined)) as { ready: boolean; models: { state: string }[] } | undefined;
        if (s?.ready && s.models.length === 2 && s.models.every((m) => m.state === 'ready')) break;
        if (Date.now() > deadline) throw new Error(`${variant}: a pod was not ready within 10 minutes`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const seconds = (performance.now() - started) / 1000;
    return { seconds, originBytes: originBytes(cdn) };
  } finally {
    for (const pod of pods) pod.child.kill('SIGTERM');
    await Promise.allSettled(pods.map((p) => p.child));
    await Promise.all(pods.map((p) => p.ws.cleanup()));
    await s3?.close();
    await redis?.stop();
    await cdn.close();
  }
}

/** Body bytes the CDN sent, without the one-byte probes each pod makes to learn a file's size. */
function originBytes(cdn: CdnFixture): number {
  return cdn.bytesServed - cdn.requests.filter((r) => r.range === 'bytes=0-0').length;
}

async function main(): Promise<void> {
  const lines: string[] = [];
  const log = (line: string) => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  log(`${PODS} pods, 2 models of ${TOTAL_MIB} MiB in all (one pinned by sha256, one plain URL), CDN capped at ${CAP / 1e6} MB/s per connection,`);
  log(`DOWNLOAD_CONNECTIONS=8; ${os.cpus().length} CPUs, node ${process.version}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  log('time: from starting the four `phoenix up` processes until every one reports ready (includes process start and ComfyUI stand-in)');
  const independent = await provision('independent');
  const fleet = await provision('fleet');
  log('| pods | origin bytes | × the models\' bytes | seconds to all ready |');
  log('|---|---:|---:|---:|');
  for (const [name, o] of [['4 independent (each its own Redis, no mirror)', independent], ['fleet of 4 (one Redis, one S3 mirror)', fleet]] as const) {
    log(`| ${name} | ${(o.originBytes / MiB).toFixed(0)} MiB | ${(o.originBytes / MODEL_BYTES).toFixed(2)} | ${o.seconds.toFixed(2)} |`);
  }
  log(`fleet / independent: origin bytes ${(fleet.originBytes / independent.originBytes).toFixed(2)}, time ${(fleet.seconds / independent.seconds).toFixed(2)}`);

  // The fleet section lives after the download benchmark's notes marker, which `npm run bench` keeps.
  const resultsPath = path.join(here, 'RESULTS.md');
  const previous = await readFile(resultsPath, 'utf8').catch(() => '');
  const section = [MARK[0], '## Fleet benchmark', '', `Measured ${new Date().toISOString()} by \`npm run bench:fleet\`.`, '', '```', ...lines, '```', MARK[1]].join('\n');
  const start = previous.indexOf(MARK[0]);
  const end = previous.indexOf(MARK[1]);
  const next = start >= 0 && end > start ? previous.slice(0, start) + section + previous.slice(end + MARK[1].length) : `${previous.trimEnd()}\n\n${section}\n`;
  await writeFile(resultsPath, next);
}

await main();
