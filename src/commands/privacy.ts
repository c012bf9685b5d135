import { hostPatternProblem, parseSeconds } from '../config/host-pattern.js';
import type { Config } from '../config/index.js';
import type { PrivacyDetails } from '../privacy/status.js';
import { callApi, type ApiAnswer } from './api-client.js';

export const PRIVACY_USAGE = 'phoenix privacy status|summary|allow HOST [SECONDS]|deny HOST|lockdown|release';

/**
 * `phoenix privacy …` through the running board's API. Bad input exits 2 before anything is
 * sent, naming what is wrong; so does a 400 from the API. Returns the exit code.
 */
export async function runPrivacy(config: Config, args: readonly string[], json: boolean): Promise<number> {
  const [action, host, seconds, ...extra] = args;
  const fail = (problem: string) => {
    process.stderr.write(`phoenix privacy: ${problem}\nusage: ${PRIVACY_USAGE}\n`);
    return 2;
  };
  switch (action) {
    case 'status':
    case 'summary': {
      const res = await callApi<PrivacyDetails>(config, '/api/privacy');
      if (res.status !== 200) return answerFailed(res);
      if (json) process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
      else process.stdout.write(action === 'status' ? statusText(res.body) : summaryText(res.body));
      return 0;
    }
    case 'allow':
    case 'deny': {
      if (!host) return fail(`${action}: give a HOST (a host name, *.domain pattern or IP address)`);
      const problem = hostPatternProblem(host);
      if (problem) return fail(`HOST: ${problem}`);
      if (action === 'deny' && seconds !== undefined) return fail('deny takes no SECONDS: a deny holds until you allow the host');
      if (seconds !== undefined) {
        const parsed = parseSeconds(seconds);
        if ('problem' in parsed) return fail(`SECONDS: ${parsed.problem}`);
      }
      if (extra.length > 0) return fail(`unexpected ${extra.join(' ')}`);
      const body = action === 'allow' && seconds !== undefined ? { host, seconds: Number(seconds) } : { host };
      return post(config, `/api/privacy/${action}`, body);
    }
    case 'lockdown':
    case 'release':
      if (host !== undefined) return fail(`${action} takes no arguments`);
      return post(config, `/api/privacy/${action}`, {});
    default:
      return fail(action ? `unknown action "${action}"` : 'give an action');
  }
}

async function post(config: Config, route: string, body: unknown): Promise<number> {
  const res = await callApi(config, route, { method: 'POST', body: JSON.stringify(body) });
  if (res.status !== 200) return answerFailed(res);
  process.stdout.write(`${JSON.stringify(res.body)}\n`);
  return 0;
}

function answerFailed(res: ApiAnswer): number {
  process.stderr.write(`phoenix privacy: HTTP ${res.status}: ${JSON.stringify(res.body)}\n`);
  return res.status === 400 ? 2 : 1;
}

function statusText(s: PrivacyDetails): string {
  const lines = [
    `privacy: ${s.enabled ? 'on' : 'off'}${s.monitoringOnly ? ' (monitoring only)' : ''}  phase: ${s.phase}  enforcement: ${s.enforcement}`,
    `  ${s.reason}`,
    `connections: ${s.allowed} allowed, ${s.blocked} blocked`,
    ...s.recent.map((r) => `  ${new Date(r.time).toISOString()}  ${verdict(r)}  ${r.host}:${r.port}  ${r.user}  (${r.rule})`),
  ];
  return `${lines.join('\n')}\n`;
}

function summaryText(s: PrivacyDetails): string {
  const lines = [
    `phase: ${s.phase}  enforcement: ${s.enforcement}  connections: ${s.allowed} allowed, ${s.blocked} blocked`,
    'allowed hosts:',
    ...s.rules.allow.map((a) => `  ${a.pattern}  (${a.source}${a.until ? `, until ${new Date(a.until).toISOString()}` : ''})`),
    'denied hosts:',
    ...s.rules.deny.map((d) => `  ${d.pattern}  (${d.source})`),
    'hosts seen (blocked / allowed / bytes):',
    ...s.hosts.map((h) => `  ${h.host}  ${h.blocked} / ${h.allowed} / ${h.bytes}`),
  ];
  return `${lines.join('\n')}\n`;
}

function verdict(r: { allowed: boolean; wouldBlock: boolean }): string {
  return r.wouldBlock ? 'would block' : r.allowed ? 'allowed    ' : 'BLOCKED    ';
}
