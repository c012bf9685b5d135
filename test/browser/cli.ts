/**
 * The browser login flow against a running pod, for scripts/test-image.sh:
 *   PHOENIX_PASSWORD=… tsx test/browser/cli.ts --board http://127.0.0.1:8189 --comfy http://127.0.0.2:8188 [--user admin]
 * Prints each step; exits 1 at the first that fails.
 */
import { parseArgs } from 'node:util';
import { browserLoginFlow } from './login-flow.js';

const { values } = parseArgs({ options: { board: { type: 'string' }, comfy: { type: 'string' }, user: { type: 'string', default: 'admin' } } });
const password = process.env.PHOENIX_PASSWORD;
if (!values.board || !values.comfy || !password) {
  process.stderr.write('usage: PHOENIX_PASSWORD=… tsx test/browser/cli.ts --board URL --comfy URL [--user NAME]\n');
  process.exit(2);
}
browserLoginFlow({ board: values.board, comfy: values.comfy, username: values.user ?? 'admin', password }, (step) => process.stdout.write(`browser: ${step}\n`)).then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`browser: FAILED: ${err.message}\n`);
    process.exit(1);
  },
);
