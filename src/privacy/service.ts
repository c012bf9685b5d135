import { execa } from 'execa';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import { openQueues } from '../queue/queues.js';
import { privacyEnvironment } from './environment.js';
import { ensureFirewall, removeFirewall, type FirewallState } from './firewall.js';
import { podHosts } from './hosts.js';
import { EgressProxy } from './proxy.js';
import { PrivacyStore, type EnforcementReport } from './store.js';

/**
 * The privacy side of the workers process (ComfyUI's parent): it runs the egress proxy on
 * loopback, sets the firewall where it may, publishes what is enforced for the board, and closes
 * open connections when a lockdown starts. ComfyUI's environment comes from here.
 */

export interface RunningPrivacy {
  /** ComfyUI's environment: config.comfyui.env, plus the proxy and telemetry switches when privacy is on. */
  comfyEnv: Readonly<Record<string, string>>;
  report: EnforcementReport | null;
  stop(): Promise<void>;
}

export interface PrivacyServiceOptions {
  config: Config;
  connection: Redis;
  prefix: string;
  log: Logger;
  /** Where the image's entrypoint notes the firewall it set (tests use their own). */
  firewallMarker?: string;
  /** How often the lockdown is checked (a lockdown closes open connections within this time). */
  pollMs?: number;
}

const REPORT_TTL_MS = 15_000;

export async function startPrivacy(options: PrivacyServiceOptions): Promise<RunningPrivacy> {
  const { config, connection, prefix } = options;
  const log = options.log.child({ component: 'privacy' });
  if (!config.privacy.enabled) return { comfyEnv: config.comfyui.env, report: null, stop: async () => undefined };

  const queues = openQueues(connection, prefix);
  const store = new PrivacyStore(queues, config);
  const proxy = new EgressProxy({ store, privacy: config.privacy, hosts: podHosts(config), log });
  const url = await proxy.start();
  const firewall = config.privacy.monitoringOnly ? undefined : await firewallFor(config.comfyui.user, options.firewallMarker);
  const report: EnforcementReport = {
    ...enforcementOf(config, firewall),
    proxy: url,
    user: config.comfyui.user ?? null,
    updatedAt: Date.now(),
  };
  const publish = () =>
    store.publishEnforcement({ ...report, updatedAt: Date.now() }, REPORT_TTL_MS).catch((err: Error) => log.warn({ err: err.message }, 'cannot publish the privacy report'));
  await publish();
  log[report.enforcement === 'firewall' ? 'info' : 'warn']({ proxy: url, enforcement: report.enforcement, reason: report.reason }, 'privacy: egress proxy up');

  let locked = await store.lockdown().catch(() => false);
  const watch = setInterval(() => {
    void store.lockdown().then((now) => {
      if (now && !locked) {
        log.warn('privacy lockdown: closing every open connection');
        proxy.closeAll();
      }
      locked = now;
    }, () => undefined);
  }, options.pollMs ?? 1000);
  const refresh = setInterval(() => void publish(), REPORT_TTL_MS / 3);

  return {
    comfyEnv: privacyEnvironment(config.comfyui.env, config.privacy, url),
    report,
    async stop() {
      clearInterval(watch);
      clearInterval(refresh);
      await proxy.stop();
      if (firewall?.enforced && firewall.how === 'applied') await removeFirewall();
      await store.clearEnforcement().catch(() => undefined);
      await queues.close();
    },
  };
}

/** The firewall for COMFYUI_USER, or why there is none. */
async function firewallFor(user: string | undefined, marker: string | undefined): Promise<FirewallState> {
  if (!user) {
    return {
      enforced: false,
      reason: 'COMFYUI_USER is not set: ComfyUI runs as Phoenix\'s own user, so firewall rules by user cannot single out its traffic',
    };
  }
  const uid = await uidOf(user);
  if (uid === undefined) return { enforced: false, reason: `COMFYUI_USER "${user}" is not a user on this machine` };
  if (uid === process.getuid?.()) return { enforced: false, reason: `COMFYUI_USER "${user}" is Phoenix's own user: rules by user would block Phoenix too` };
  return ensureFirewall({ user, uid, ...(marker ? { markerPath: marker } : {}) });
}

function enforcementOf(config: Config, firewall: FirewallState | undefined): Pick<EnforcementReport, 'enforcement' | 'reason'> {
  if (config.privacy.monitoringOnly) return { enforcement: 'none', reason: 'MONITORING_ONLY: connections are recorded, nothing is blocked' };
  if (firewall?.enforced) {
    return { enforcement: 'firewall', reason: `firewall rules send every connection of ${config.comfyui.user} through the proxy` };
  }
  return {
    enforcement: 'proxy',
    reason: `advisory: code that honours HTTP_PROXY is filtered; code that ignores it is not stopped (${firewall?.reason ?? 'no firewall'})`,
  };
}

/** The uid of a user name (or a numeric uid), through the system's user database. */
export async function uidOf(user: string): Promise<number | undefined> {
  const r = await execa('id', ['-u', '--', user], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 && /^\d+$/.test(String(r.stdout).trim()) ? Number(String(r.stdout).trim()) : undefined;
}
