/**
 * `npm run demo`: the real Phoenix stack (embedded Redis, workers, Bull Board, producer) against a
 * local fixture hub (CivitAI, Hugging Face, Google Drive, a capped CDN, a git host) and a stand-in
 * ComfyUI. Prints where Bull Board is and how to log in, then follows provisioning until ComfyUI
 * is ready. Ctrl-C stops everything. DEMO_EXIT_WHEN_READY=1 stops once ready (used to check it).
 *
 * The terminal shows only the progress view; the stack's JSON log lines go to phoenix.log in the
 * demo's workspace (DEMO_WORKSPACE, default .demo), where `npx pino-pretty` reads them.
 */
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/lib/log.js';
import type { PodStatus } from '../src/board/status.js';
import { stopOnSignals } from '../src/runtime/shutdown.js';
import { up } from '../src/runtime/up.js';
import { startFixtureHub } from '../test/fixtures/hub.js';
import { writeWorkflow, WORKFLOW_FILES } from '../test/fixtures/workflows.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workspace = path.resolve(process.env.DEMO_WORKSPACE ?? path.join(root, '.demo'));
const logFile = path.join(workspace, 'phoenix.log');
const password = process.env.PHOENIX_PASSWORD ?? 'phoenix-demo';
const token = process.env.PHOENIX_API_TOKEN ?? 'phoenix-demo-api-token';
const port = Number(process.env.PHOENIX_PORT ?? 8189);

await rm(workspace, { recursive: true, force: true });
await mkdir(path.join(workspace, 'ComfyUI'), { recursive: true });
await copyFile(path.join(root, 'test/fixtures/comfyui/main.py'), path.join(workspace, 'ComfyUI/main.py'));
const hub = await startFixtureHub();
await writeFile(path.join(workspace, 'models.toml'), hub.manifest);
// A ComfyUI workflow as saved from the editor: its models and custom nodes come with it.
const workflow = await writeWorkflow(workspace, WORKFLOW_FILES.fluxDetail, hub.workflowVars, 'flux-detail.json');

const config = await loadConfig({
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? workspace,
  ...hub.env,
  WORKSPACE: workspace,
  PROVISION_URL: path.join(workspace, 'models.toml'),
  PROVISION_WORKFLOWS: workflow,
  PHOENIX_PORT: String(port),
  PHOENIX_PASSWORD: password,
  PHOENIX_API_TOKEN: token,
  COMFYUI_PORT: process.env.COMFYUI_PORT ?? '8188',
  DOWNLOAD_CONNECTIONS: '8',
});
const log = createLogger({ secrets: config.secrets, debug: false, destination: createWriteStream(logFile, { flags: 'a' }) });
const stack = await up(config, log);
const stop = async (): Promise<void> => {
  await stack.stop();
  await hub.close();
};
stopOnSignals(stop, log);

process.stdout.write(
  `\n  Phoenix demo is running.\n` +
    `  Bull Board:  http://127.0.0.1:${port}/board/   (sign in as admin, password ${password})\n` +
    `  ComfyUI:     http://127.0.0.1:${config.comfyui.port}/   (the same login)\n` +
    `  Status:      curl -H 'Authorization: Bearer ${token}' http://127.0.0.1:${port}/status\n` +
    `  Add a model: curl -u admin:${password} -H 'content-type: application/json' ` +
    `-d '{"source":"url","url":"${hub.cdn.url('/upscalers/4x-UltraSharp.pth')}","filename":"copy.pth","category":"upscale_models"}' ` +
    `http://127.0.0.1:${port}/api/models\n` +
    `  Logs:        ${logFile}   (JSON lines; npx pino-pretty < ${shortPath(logFile)})\n` +
    `  Workspace:   ${workspace}   (Ctrl-C stops everything)\n\n`,
);

const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` };
let last = '';
for (;;) {
  const s = (await (await fetch(`http://127.0.0.1:${port}/status`, { headers: auth })).json()) as PodStatus;
  const line = s.models
    .map((m) => `${m.name.split(',')[0]} ${m.state}${m.bytes ? ` ${Math.floor((100 * m.bytesDone) / m.bytes)}%` : ''}`)
    .join(' | ');
  const summary = `ComfyUI ${s.comfyui.state} | ${line}`;
  if (summary !== last) process.stdout.write(`  ${summary}\n`);
  last = summary;
  if (s.ready) {
    process.stdout.write(
      `\n  Ready: ${s.models.filter((m) => m.state === 'ready').length}/${s.models.length} models verified, ` +
        `${s.nodes.filter((n) => n.state === 'installed').length}/${s.nodes.length} custom nodes, ` +
        `workflows ready: ${s.workflows.map((w) => `${w.name} ${w.ready ? 'yes' : 'no'}`).join(', ')}, ComfyUI on port ${s.comfyui.port}.\n`,
    );
    break;
  }
  await new Promise((r) => setTimeout(r, 500));
}
if (process.env.DEMO_EXIT_WHEN_READY === '1') {
  await stop();
  process.exit(0);
}

/** A path relative to the current folder when it is inside it, else as it is. */
function shortPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') ? file : relative;
}
