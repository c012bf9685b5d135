import type { Config } from '../config/index.js';
import type { Phase } from './policy.js';
import type { ConnectionRecord, Enforcement, HostSummary, PrivacyStore } from './store.js';

/** `/status.privacy`: the phase, what is really enforced and why, counters and the latest connections. */
export interface PrivacyStatus {
  enabled: boolean;
  phase: Phase;
  enforcement: Enforcement;
  /** Why the enforcement is what it is (what it cannot stop, when it is only the proxy). */
  reason: string;
  monitoringOnly: boolean;
  /** The egress proxy ComfyUI is given, while it runs. */
  proxy: string | null;
  blocked: number;
  allowed: number;
  recent: ConnectionRecord[];
}

/** GET /api/privacy: the status plus the rules in force and every host seen. */
export interface PrivacyDetails extends PrivacyStatus {
  rules: {
    allow: { pattern: string; until: number | null; source: 'PRIVACY_ALLOW' | 'runtime' }[];
    deny: { pattern: string; source: 'PRIVACY_DENY' | 'runtime' }[];
  };
  hosts: HostSummary[];
}

const RECENT = 20;

export async function privacyStatus(config: Config, store: PrivacyStore): Promise<PrivacyStatus> {
  const [phase, report, counts, recent] = await Promise.all([store.phase(), store.enforcement(), store.counts(), store.recent(RECENT)]);
  const enabled = config.privacy.enabled;
  const running = enabled && report !== null;
  return {
    enabled,
    phase,
    enforcement: running ? report.enforcement : 'none',
    reason: !enabled
      ? 'PRIVACY_ENABLED is false: nothing is filtered or recorded'
      : running
        ? report.reason
        : 'the egress proxy is not running (it runs in the workers process): nothing is filtered now',
    monitoringOnly: config.privacy.monitoringOnly,
    proxy: running ? report.proxy : null,
    ...counts,
    recent,
  };
}

export async function privacyDetails(config: Config, store: PrivacyStore, now = Date.now()): Promise<PrivacyDetails> {
  const [status, rules, hosts] = await Promise.all([privacyStatus(config, store), store.rules(), store.hosts()]);
  return {
    ...status,
    rules: {
      allow: [
        ...config.privacy.allow.map((pattern) => ({ pattern, until: null, source: 'PRIVACY_ALLOW' as const })),
        ...rules.allow.filter((a) => a.until === null || a.until > now).map((a) => ({ ...a, source: 'runtime' as const })),
      ],
      deny: [
        ...config.privacy.deny.map((pattern) => ({ pattern, source: 'PRIVACY_DENY' as const })),
        ...rules.deny.map((pattern) => ({ pattern, source: 'runtime' as const })),
      ],
    },
    hosts,
  };
}
