/**
 * The workers' privacy side on its own, as the tests run it inside the pod's network namespace:
 * loads the configuration from its environment, starts the egress proxy (and the firewall, where
 * COMFYUI_USER and root allow), prints one JSON line {comfyEnv, report}, and stops on SIGTERM.
 * argv: <BullMQ prefix> <firewall marker path>
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { loadConfig } from '../../src/config/index.js';
import { startPrivacy } from '../../src/privacy/service.js';

const [prefix, marker] = process.argv.slice(2) as [string, string];
const config = await loadConfig(process.env);
const connection = new Redis({ path: config.redisUrl!.replace(/^unix:\/\//, ''), maxRetriesPerRequest: null });
const privacy = await startPrivacy({ config, connection, prefix, log: pino({ level: 'silent' }), firewallMarker: marker, pollMs: 200 });
process.stdout.write(`${JSON.stringify({ comfyEnv: privacy.comfyEnv, report: privacy.report })}\n`);
process.on('SIGTERM', () => {
  void privacy.stop().then(() => {
    connection.disconnect();
    process.exit(0);
  });
});
