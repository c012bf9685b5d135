import net from 'node:net';
import type { ComfyState } from '../comfyui/pod-state.js';
import { hostMatches, normalizeHost } from '../config/host-pattern.js';
import type { PrivacyConfig } from '../config/index.js';
import { AI_SERVICE_HOSTS, TELEMETRY_HOSTS, type PodHosts } from './hosts.js';

/**
 * The egress policy as pure functions: which phase the pod is in, and what a connection to a host
 * gets in that phase. The proxy and the board both use them, from the same state in Redis.
 */

export type Phase = 'startup' | 'downloads' | 'strict' | 'lockdown';

/** What a host is, for the record and the summary. */
export type HostCategory = 'local' | 'ai-service' | 'telemetry' | 'model-source' | 'git-host' | 'package-index' | 'other';

export interface PhaseInputs {
  lockdown: boolean;
  comfyState: ComfyState;
  /** A download or node install is queued or running. */
  busy: boolean;
  /** When the last download or node install ended (ms), if any did. */
  lastActivityAt: number | null;
  now: number;
  graceMs: number;
}

/**
 * lockdown while a user holds it; startup until ComfyUI first answers (provisioning runs then);
 * downloads while any download or node install is queued or running and for the grace period
 * after the last one ended; strict afterwards.
 */
export function computePhase(i: PhaseInputs): Phase {
  if (i.lockdown) return 'lockdown';
  if (i.comfyState === 'waiting' || i.comfyState === 'starting') return 'startup';
  if (i.busy) return 'downloads';
  if (i.lastActivityAt !== null && i.now - i.lastActivityAt < i.graceMs) return 'downloads';
  return 'strict';
}

/** Allow and deny patterns added at run time; an allow may expire. */
export interface RuntimeRules {
  allow: readonly { pattern: string; until: number | null }[];
  deny: readonly string[];
}

export interface Decision {
  allowed: boolean;
  /** MONITORING_ONLY let through what the policy would have blocked. */
  wouldBlock: boolean;
  category: HostCategory;
  /** Which rule decided, in words. */
  rule: string;
}

export interface DecisionContext {
  phase: Phase;
  config: PrivacyConfig;
  hosts: PodHosts;
  runtime: RuntimeRules;
  now: number;
}

/**
 * First match wins: a local address (never proxied), lockdown, deny lists, allow lists, AI
 * services and telemetry (when blocked), model sources; then the phase: strict blocks the rest,
 * startup and downloads let it through.
 */
export function decide(host: string, ctx: DecisionContext): Decision {
  const h = normalizeHost(host);
  const category = classify(h, ctx.hosts);
  const verdict = (allowed: boolean, rule: string): Decision => {
    if (allowed || category === 'local' || !ctx.config.monitoringOnly) return { allowed, wouldBlock: false, category, rule };
    return { allowed: true, wouldBlock: true, category, rule: `monitoring only, would be blocked: ${rule}` };
  };
  const { config, runtime } = ctx;
  if (category === 'local') return verdict(false, 'a local address is not an outside host: connect to it directly');
  if (ctx.phase === 'lockdown') return verdict(false, 'lockdown: every outside connection is blocked');
  const denied = [...config.deny, ...runtime.deny].find((p) => hostMatches(p, h));
  if (denied) return verdict(false, `denied (${denied})`);
  const allowed = [...config.allow, ...runtime.allow.filter((a) => a.until === null || a.until > ctx.now).map((a) => a.pattern)].find((p) =>
    hostMatches(p, h),
  );
  if (allowed) return verdict(true, `allowed (${allowed})`);
  if (category === 'ai-service' && config.blockAiServices) return verdict(false, 'AI service (BLOCK_AI_SERVICES)');
  if (category === 'telemetry' && config.blockTelemetry) return verdict(false, 'telemetry (BLOCK_TELEMETRY)');
  if (category === 'model-source') return verdict(true, 'model source');
  if (ctx.phase === 'strict') return verdict(false, 'strict phase: only model sources and allowed hosts');
  return verdict(true, `${ctx.phase} phase: not on a block list`);
}

/** What a host is: AI service and telemetry first, since a model source's domain may hold an AI API. */
export function classify(host: string, hosts: PodHosts): HostCategory {
  const h = normalizeHost(host);
  const on = (list: readonly string[]) => list.some((p) => hostMatches(p, h));
  if (isLocal(h)) return 'local';
  if (on(AI_SERVICE_HOSTS)) return 'ai-service';
  if (on(TELEMETRY_HOSTS)) return 'telemetry';
  if (on(hosts.modelSources)) return 'model-source';
  if (on(hosts.gitHosts)) return 'git-host';
  if (on(hosts.packageIndexes)) return 'package-index';
  return 'other';
}

/** Loopback and link-local (cloud metadata lives at 169.254.169.254): never reached through the proxy. */
function isLocal(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (net.isIPv4(host)) return host.startsWith('127.') || host.startsWith('169.254.') || host === '0.0.0.0';
  if (net.isIPv6(host)) return host === '::1' || host === '::' || /^fe[89ab]/.test(host) || host.startsWith('::ffff:127.');
  return false;
}
