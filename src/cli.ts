#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runAdd } from './commands/add.js';
import { runFileBrowser } from './commands/filebrowser.js';
import { runPlan } from './commands/plan.js';
import { runPrivacy } from './commands/privacy.js';
import { runStatus } from './commands/status.js';
import { runTemplate } from './commands/template.js';
import { ConfigError, loadConfig } from './config/index.js';
import { createLogger } from './lib/log.js';
import { runBoard, runCleanup, runFleetBoard, runProduce, runRedis, runWorkers } from './runtime/programs.js';
import { runUp } from './runtime/up.js';

const USAGE = `usage: phoenix <command>

  up                 run the whole pod: Redis, workers, board, producer, then ComfyUI
  produce            enqueue this start's job flow (idempotent) and exit
  workers            run the download, organize, nodes and service workers
  board [--fleet]    serve Bull Board, /status and the API on PHOENIX_PORT; --fleet: the fleet
                     board alone against the shared Redis (every pod's queues, /fleet, /api/fleet)
  plan [--json] [--workflow <file>]
                     validate the configuration (and the workflow) and list what would be provisioned
  add <spec>         enqueue a model through the API: a CivitAI version id or AIR, owner/repo[/file],
                     or a URL  [--category <folder>] [--filename <name>]
                     [--fleet [--pods <id,…>] [--labels <k=v,…>]]: to the fleet's live pods
  add --workflow <file> [--name <name>]
                     enqueue what a ComfyUI workflow needs (its models and custom nodes) through the API
  status [--json]    print the pod's status from the API
  privacy status|summary|allow HOST [SECONDS]|deny HOST|lockdown|release  [--json]
                     what ComfyUI's side may reach: show it, allow or deny a host, lock down
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
      workflow: { type: 'string', multiple: true },
      fleet: { type: 'boolean', default: false },
      pods: { type: 'string' },
      labels: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (!command || values.help) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 1;
  }

  const config = await loadConfig(process.env, command === 'plan' ? { extraWorkflows: values.workflow ?? [] } : {});
  const log = createLogger({ secrets: config.secrets, debug: config.debug });

  switch (command) {
    case 'up':
      return await runUp(config, log);
    case 'produce':
      return await runProduce(config, log);
    case 'workers':
      return await runWorkers(config, log);
    case 'board':
      return values.fleet ? await runFleetBoard(config, log) : await runBoard(config, log);
    case 'plan':
      return await runPlan(config, log, values.json ?? false);
    case 'add':
      return await runAdd(config, rest, values);
    case 'status':
      return await runStatus(config, values.json ?? false);
    case 'privacy':
      return await runPrivacy(config, rest, values.json ?? false);
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
