import type { PodStatus } from '../board/status.js';
import type { Config } from '../config/index.js';
import { callApi } from './api-client.js';

/** `phoenix status [--json]`: the pod's status from the running board. Returns the exit code. */
export async function runStatus(config: Config, json: boolean): Promise<number> {
  const res = await callApi<PodStatus>(config, '/status');
  if (res.status !== 200) {
    process.stderr.write(`phoenix status: HTTP ${res.status}: ${JSON.stringify(res.body)}\n`);
    return 1;
  }
  const s = res.body;
  if (json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  else {
    const { comfyui } = s;
    const nextTry = comfyui.nextTryAt ? `  (next try in ${Math.max(0, Math.round((comfyui.nextTryAt - Date.now()) / 1000))}s)` : '';
    process.stdout.write(`ready: ${s.ready}  ComfyUI: ${comfyui.state}${nextTry}\n`);
    if (comfyui.error) process.stdout.write(`  ComfyUI: ${comfyui.error}\n`);
    for (const line of comfyui.lastOutput ?? []) process.stdout.write(`    | ${line}\n`);
    for (const m of s.models) {
      const pct = m.bytes ? ` ${Math.floor((100 * m.bytesDone) / m.bytes)}%` : '';
      const waiting = m.waitingFor ? `  waiting for ${m.waitingFor}` : '';
      process.stdout.write(`  ${m.state.padEnd(11)} ${m.name}${pct}${waiting}${m.error ? `  (${m.error})` : ''}\n`);
      for (const f of m.files) process.stdout.write(`      ${f.state.padEnd(11)} ${f.path ?? f.name}  ${formatSize(f.bytes)}  ${f.sha256 ?? 'sha256 not known yet'}\n`);
    }
    for (const w of s.workflows ?? []) {
      process.stdout.write(`workflow ${w.name}: ${w.ready ? 'ready' : 'not ready'}\n`);
      for (const m of w.missing) process.stdout.write(`  missing     ${m.message}\n`);
    }
  }
  return 0;
}

function formatSize(bytes: number | null): string {
  return bytes === null ? 'size unknown' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
