import { ConfigError, loadConfig } from '../../src/config/index.js';

/** The problems loadConfig lists for `env`; fails the test when the configuration is accepted. */
export async function problemsOf(env: Record<string, string>): Promise<readonly string[]> {
  try {
    await loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}
