#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { startBoard } from './board/server.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { parseShortSpec } from './config/model-spec.js';
import { createLogger, type Logger } from './lib/log.js';
import { cleanup } from './runtime/cleanup.js';
import { runFileBrowser } from './commands/filebrowser.js';
import { planModels } from './commands/plan.js';
import { PodState } from './comfyui/pod-state.js';
import { produce } from './producer/produce.js';
import { openQueues } from './queue/queues.js';
import { EmbeddedRedis, connect, redisTarget } from './runtime/redis.js';
import { runTemplate } from './commands/template.js';
import { stopOnSignals, up, whenReady } from './runtime/up.js';
import { startWorkers } from './workers/index.js';

const USAGE = `usage: phoenix <command>

  up                 run the whole pod: Redis, workers, board, producer, then ComfyUI
  produce            enqueue this start's job flow (idempotent) and exit
  workers            run the download, organize, nodes and service workers
  board              serve Bull Board, /status and the API on PHOENIX_PORT
  plan [--json]      validate the configuration and list what would be provisioned
  add <spec>         enqueue a model through the API: a CivitAI version id, owner/repo[/file],
                     or a URL  [--category <folder>] [--filename <name>]
  status [--json]    print the pod's status from the API
  cleanup            remove partial downloads (with PARANOID_MODE also caches and histories in $HOME)
  redis              run the pod's redis-server on its unix socket (used by supervisord)
  filebrowser        set up and run FileBrowser over $WORKSPACE on FILEBROWSER_PORT (used by supervisord)
  template [--deploy] [--image <ref>] [--name <name>]
                     print the RunPod template JSON; --deploy saves it with RUNPOD_API_KEY

Configuration comes from the environment (see README). Bad configuration exits with code 2.`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      category: { type: 'string' },
      filename: { type: 'string' },
      deploy: { type: 'boolean', default: false },
      image: { type: 'string' },
      name: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (!command || values.help) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 1;
  }

  const config = await loadConfig(process.env);
  const log = createLogger({ secrets: config.secrets, debug: config.debug });

  switch (command) {
    case 'up': {
      const stack = await up(config, log);
      stopOnSignals(stack.stop, log);
      return await forever();
    }
    case 'produce':
      return await runProduce(config, log);
    case 'workers':
      return await runWorkers(config, log);
    case 'board':
      return await runBoard(config, log);
    case 'plan':
      return await runPlan(config, log, values.json ?? false);
    case 'add':
      return await runAdd(config, rest, values);
    case 'status':
      return await runStatus(config, values.json ?? false);
    case 'cleanup':
      return await runCleanup(config, log);
    case 'redis':
      return await runRedis(config, log);
    case 'filebrowser':
      return await runFileBrowser(config, { log });
    case 'template':
      return await runTemplate(config, { deploy: values.deploy ?? false, imageName: values.image, name: values.name });
    default:
      process.stderr.write(`phoenix: unknown command "${command}"\n\n${USAGE}\n`);
      return 1;
  }
}

async function runProduce(config: Config, log: Logger): Promise<number> {
  const connection = connect(redisTarget(config), 'worker');
  const queues = openQueues(connection);
  try {
    const result = await produce({ config, queues, connection, log });
    log.info({ action: result.action, jobs: result.jobIds.length }, 'producer done');
    return 0;
  } finally {
    await queues.close();
    connection.disconnect();
  }
}

/**
 * Workers also reconcile on start: after a workers restart ComfyUI (their child) is gone, and the
 * producer then replaces the finished flow so ComfyUI comes back once the disk checks pass.
 */
async function runWorkers(config: Config, log: Logger): Promise<number> {
  const connection = connect(redisTarget(config), 'worker');
  const workers = startWorkers({ config, connection, log, prefix: 'phoenix' });
  const queues = openQueues(connection);
  stopOnSignals(async () => {
    await workers.close(10_000);
    await queues.close();
    connection.disconnect();
    if (config.paranoid) await cleanup(config, log, { includeState: false });
  }, log);
  await produce({ config, queues, connection, log });
  return forever();
}

async function runBoard(config: Config, log: Logger): Promise<number> {
  const connection = connect(redisTarget(config), 'api');
  connection.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  await whenReady(connection, 120_000);
  const queues = openQueues(connection);
  const board = await startBoard({ config, queues, pod: new PodState(connection, queues.prefix), log });
  stopOnSignals(async () => {
    await board.close();
    await queues.close();
    connection.disconnect();
  }, log);
  return forever();
}

async function runPlan(config: Config, log: Logger, json: boolean): Promise<number> {
  const models = await planModels(config, log);
  if (json) process.stdout.write(`${JSON.stringify({ models, nodes: config.nodes }, null, 2)}\n`);
  else {
    for (const m of models) {
      if (m.error) process.stdout.write(`FAILED  ${m.origin}: ${m.error}\n`);
      for (const f of m.files) {
        const size = f.bytes !== undefined ? `${(f.bytes / 2 ** 20).toFixed(1)} MiB` : 'size unknown';
        process.stdout.write(`model   ${f.category ?? '(folder from header)'}/${f.name}  ${size}  ${f.sha256 ?? 'no published sha256'}  (${m.origin})\n`);
      }
    }
    for (const n of config.nodes) process.stdout.write(`node    custom_nodes/${n.name}  ${n.url}${n.ref ? `@${n.ref}` : ''}\n`);
  }
  return models.some((m) => m.error) ? 1 : 0;
}

async function runAdd(config: Config, specs: string[], values: { category?: string | undefined; filename?: string | undefined }): Promise<number> {
  if (specs.length === 0) {
    process.stderr.write('phoenix add: give a CivitAI version id, owner/repo[/file] or a URL\n');
    return 2;
  }
  const models = specs.map((s) => ({
    ...parseShortSpec(s, config.endpoints),
    ...(values.category ? { category: values.category } : {}),
    ...(values.filename ? { filename: values.filename } : {}),
  }));
  const res = await callApi(config, '/api/models', { method: 'POST', body: JSON.stringify({ models }) });
  process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
  return res.status === 202 ? 0 : res.status === 400 ? 2 : 1;
}

async function runStatus(config: Config, json: boolean): Promise<number> {
  const res = await callApi(config, '/status', {});
  if (res.status !== 200) {
    process.stderr.write(`phoenix status: HTTP ${res.status}: ${JSON.stringify(res.body)}\n`);
    return 1;
  }
  const s = res.body as { ready: boolean; comfyui: { state: string }; models: { name: string; state: string; bytesDone: number; bytes: number | null; error: string | null }[] };
  if (json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  else {
    process.stdout.write(`ready: ${s.ready}  ComfyUI: ${s.comfyui.state}\n`);
    for (const m of s.models) {
      const pct = m.bytes ? ` ${Math.floor((100 * m.bytesDone) / m.bytes)}%` : '';
      process.stdout.write(`  ${m.state.padEnd(11)} ${m.name}${pct}${m.error ? `  (${m.error})` : ''}\n`);
    }
  }
  return 0;
}

async function callApi(config: Config, route: string, init: RequestInit): Promise<{ status: number; body: unknown }> {
  if (config.server.passwordGenerated) throw new ConfigError(['PHOENIX_PASSWORD: needed to call the running board\'s API']);
  const res = await fetch(`http://127.0.0.1:${config.server.port}${route}`, {
    ...init,
    headers: {
      authorization: `Basic ${Buffer.from(`${config.server.username}:${config.server.password}`).toString('base64')}`,
      'content-type': 'application/json',
    },
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function runCleanup(config: Config, log: Logger): Promise<number> {
  await cleanup(config, log, { includeState: false });
  return 0;
}

/** The pod's Redis as a supervised program: exits when redis-server does, so supervisord restarts it. */
async function runRedis(config: Config, log: Logger): Promise<number> {
  const redis = new EmbeddedRedis({ stateDir: config.stateDir, persistent: config.persistentStorage !== undefined, log });
  await redis.start();
  let stopping = false;
  stopOnSignals(async () => {
    stopping = true;
    await redis.stop();
    if (config.paranoid) await cleanup(config, log, { includeState: true });
  }, log);
  await redis.exited;
  if (!stopping) log.error('redis-server exited');
  return stopping ? 0 : 1;
}

function forever(): Promise<number> {
  return new Promise(() => undefined);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`phoenix: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`phoenix: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
