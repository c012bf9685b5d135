import type { Config } from '../config/index.js';
import { privacyStatus } from '../privacy/status.js';
import type { ConnectionRecord, PrivacyStore } from '../privacy/store.js';

/** Rows the page shows; the log in Redis keeps a little more. */
const ROWS = 200;

/**
 * GET /privacy: a plain page (linked from Bull Board's header) with the phase, what is enforced,
 * every blocked connection (newest first) and the hosts by count. No script, nothing to load.
 */
export async function privacyPage(config: Config, store: PrivacyStore): Promise<string> {
  const [status, blocked, hosts] = await Promise.all([
    privacyStatus(config, store),
    store.recent(ROWS, (r) => !r.allowed || r.wouldBlock),
    store.hosts(),
  ]);
  const rows = blocked.map(row).join('\n') || '<tr><td colspan="7">nothing blocked so far</td></tr>';
  const hostRows = hosts.map((h) => `<tr><td>${esc(h.host)}</td><td>${h.blocked}</td><td>${h.allowed}</td><td>${h.bytes}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Phoenix privacy</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f4f4f4}.blocked{color:#a00}</style>
</head><body>
<h1>Privacy</h1>
<p><a href="/board/">Bull Board</a> · <a href="/api/privacy">JSON</a></p>
<p>Phase: <b>${esc(status.phase)}</b> · enforcement: <b>${esc(status.enforcement)}</b>${status.monitoringOnly ? ' · monitoring only' : ''}<br>${esc(status.reason)}</p>
<p>Connections: ${status.allowed} allowed, ${status.blocked} blocked.</p>
<h2>Blocked connections${status.monitoringOnly ? ' (would be blocked)' : ''}</h2>
<table><tr><th>time</th><th>host</th><th>port</th><th>user</th><th>phase</th><th>category</th><th>rule</th></tr>
${rows}
</table>
<h2>Hosts</h2>
<table><tr><th>host</th><th>blocked</th><th>allowed</th><th>bytes</th></tr>
${hostRows}
</table>
</body></html>`;
}

function row(r: ConnectionRecord): string {
  return `<tr class="blocked"><td>${new Date(r.time).toISOString()}</td><td>${esc(r.host)}</td><td>${r.port}</td><td>${esc(r.user)}</td><td>${esc(r.phase)}</td><td>${esc(r.category)}</td><td>${esc(r.rule)}</td></tr>`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
