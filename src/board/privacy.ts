import express, { type Router } from 'express';
import { hostPatternProblem, normalizeHost, parseSeconds } from '../config/host-pattern.js';
import type { Config } from '../config/index.js';
import { privacyDetails } from '../privacy/status.js';
import type { PrivacyStore } from '../privacy/store.js';

/**
 * GET /api/privacy and POST /api/privacy/{allow,deny,lockdown,release}. Changes go to Redis,
 * where the egress proxy reads them on its next connection (a lockdown also closes open ones).
 */
export function privacyRouter(config: Config, store: PrivacyStore): Router {
  const router = express.Router();
  router.use(express.json({ limit: '16kb' }));

  router.get('/', async (_req, res) => {
    res.json(await privacyDetails(config, store));
  });

  // Changing rules while the feature is off would look like protection that is not there.
  router.post('/{*action}', (_req, res, next) => {
    if (config.privacy.enabled) next();
    else res.status(409).json({ error: 'privacy is off (PRIVACY_ENABLED=false): nothing is filtered, so there is nothing to change' });
  });

  router.post('/allow', async (req, res) => {
    const body = asObject(req.body);
    const problems = hostProblems(body.host);
    let until: number | null = null;
    if (body.seconds !== undefined && body.seconds !== null) {
      const parsed = parseSeconds(String(body.seconds));
      if ('problem' in parsed) problems.push(`seconds: ${parsed.problem}`);
      else until = Date.now() + parsed.seconds * 1000;
    }
    if (problems.length > 0) {
      res.status(400).json({ error: 'invalid request', problems });
      return;
    }
    const pattern = normalizeHost(String(body.host));
    await store.allow(pattern, until);
    res.json({ allowed: pattern, until });
  });

  router.post('/deny', async (req, res) => {
    const body = asObject(req.body);
    const problems = hostProblems(body.host);
    if (problems.length > 0) {
      res.status(400).json({ error: 'invalid request', problems });
      return;
    }
    const pattern = normalizeHost(String(body.host));
    await store.deny(pattern);
    res.json({ denied: pattern });
  });

  router.post('/lockdown', async (_req, res) => {
    await store.setLockdown(true);
    res.json({ lockdown: true, phase: await store.phase() });
  });

  router.post('/release', async (_req, res) => {
    await store.setLockdown(false);
    res.json({ lockdown: false, phase: await store.phase() });
  });

  return router;
}

function hostProblems(host: unknown): string[] {
  if (typeof host !== 'string' || host.trim() === '') return ['host: missing; give a host name, *.domain pattern or IP address'];
  const problem = hostPatternProblem(host);
  return problem ? [`host: ${problem}`] : [];
}

function asObject(body: unknown): Record<string, unknown> {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}
