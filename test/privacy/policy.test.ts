import { describe, expect, it } from 'vitest';
import { hostMatches, hostPatternProblem, parseSeconds } from '../../src/config/host-pattern.js';
import type { PrivacyConfig } from '../../src/config/index.js';
import { AI_SERVICE_HOSTS, TELEMETRY_HOSTS, podHosts } from '../../src/privacy/hosts.js';
import { computePhase, decide, type DecisionContext, type Phase } from '../../src/privacy/policy.js';
import { testConfig } from '../helpers.js';

const privacy: PrivacyConfig = {
  enabled: true,
  blockTelemetry: true,
  blockAiServices: true,
  monitoringOnly: false,
  graceMs: 300_000,
  allow: ['allowed.example'],
  deny: ['*.denied.example'],
};
const hosts = { modelSources: ['huggingface.co', '*.hf.co', 'models.example'], gitHosts: ['git.example'], packageIndexes: ['pypi.org'] };
const ctx = (phase: Phase, over: Partial<DecisionContext> = {}): DecisionContext => ({
  phase,
  config: privacy,
  hosts,
  runtime: { allow: [], deny: [] },
  now: 1_000,
  ...over,
});

describe('host patterns', () => {
  it('matches a host exactly, *.domain below the domain at any depth, never the domain itself', () => {
    expect(hostMatches('example.com', 'EXAMPLE.com.')).toBe(true);
    expect(hostMatches('example.com', 'a.example.com')).toBe(false);
    expect(hostMatches('*.example.com', 'a.example.com')).toBe(true);
    expect(hostMatches('*.example.com', 'a.b.example.com')).toBe(true);
    expect(hostMatches('*.example.com', 'example.com')).toBe(false);
    expect(hostMatches('*.example.com', 'badexample.com')).toBe(false);
    expect(hostMatches('*-aiplatform.googleapis.com', 'us-central1-aiplatform.googleapis.com')).toBe(true);
    expect(hostMatches('::1', '[::1]')).toBe(true);
  });

  it('refuses what is not a host pattern, naming it', () => {
    for (const bad of ['exa mple.com', 'http://x.com', 'x.com:443', '*', '*.com', 'a*.example.com', '-x.com', '']) {
      expect(hostPatternProblem(bad), bad).toBeDefined();
    }
    expect(hostPatternProblem('exa mple.com')).toContain('"exa mple.com"');
    for (const good of ['example.com', '*.example.com', '10.0.0.1', '::1', 'under_score.example']) expect(hostPatternProblem(good), good).toBeUndefined();
  });

  it('takes whole seconds from 1 to a year', () => {
    expect(parseSeconds('600')).toEqual({ seconds: 600 });
    for (const bad of ['0', '-5', '1.5', 'ten', '99999999999']) expect('problem' in parseSeconds(bad), bad).toBe(true);
  });

  it('keeps the built-in lists valid', () => {
    for (const p of [...TELEMETRY_HOSTS, ...AI_SERVICE_HOSTS]) expect(hostPatternProblem(p.replace(/^\*-/, 'x-').replace(/\.\*\./, '.x.')), p).toBeUndefined();
  });
});

describe('phases', () => {
  const base = { lockdown: false, comfyState: 'running' as const, busy: false, lastActivityAt: null, now: 100_000, graceMs: 10_000 };
  it('goes startup → downloads → (grace) → strict, and lockdown overrides all', () => {
    expect(computePhase({ ...base, comfyState: 'waiting', busy: true })).toBe('startup');
    expect(computePhase({ ...base, comfyState: 'starting' })).toBe('startup');
    expect(computePhase({ ...base, busy: true })).toBe('downloads');
    expect(computePhase({ ...base, lastActivityAt: 95_000 })).toBe('downloads');
    expect(computePhase({ ...base, lastActivityAt: 89_000 })).toBe('strict');
    expect(computePhase({ ...base })).toBe('strict');
    expect(computePhase({ ...base, comfyState: 'waiting', lockdown: true })).toBe('lockdown');
  });
});

describe('decisions', () => {
  it('blocks telemetry and AI services in every phase, lets the rest through before strict', () => {
    for (const phase of ['startup', 'downloads'] as const) {
      expect(decide('o123.ingest.sentry.io', ctx(phase))).toMatchObject({ allowed: false, category: 'telemetry' });
      expect(decide('api.openai.com', ctx(phase))).toMatchObject({ allowed: false, category: 'ai-service' });
      expect(decide('git.example', ctx(phase))).toMatchObject({ allowed: true, category: 'git-host' });
      expect(decide('pypi.org', ctx(phase))).toMatchObject({ allowed: true, category: 'package-index' });
      expect(decide('somewhere.example', ctx(phase))).toMatchObject({ allowed: true, category: 'other' });
    }
  });

  it('in strict allows only model sources and allowed hosts', () => {
    expect(decide('cdn-lfs-us-1.hf.co', ctx('strict'))).toMatchObject({ allowed: true, category: 'model-source' });
    expect(decide('allowed.example', ctx('strict'))).toMatchObject({ allowed: true, rule: 'allowed (allowed.example)' });
    for (const h of ['git.example', 'pypi.org', 'somewhere.example']) expect(decide(h, ctx('strict')).allowed, h).toBe(false);
  });

  it('puts an AI API on a model source\'s domain under the AI rule', () => {
    expect(decide('router.huggingface.co', ctx('strict', { hosts: { ...hosts, modelSources: ['*.huggingface.co'] } })).allowed).toBe(false);
  });

  it('applies deny before allow, and expired run-time allows no more', () => {
    expect(decide('x.denied.example', ctx('startup'))).toMatchObject({ allowed: false, rule: 'denied (*.denied.example)' });
    const runtime = { allow: [{ pattern: 'later.example', until: 500 }, { pattern: 'open.example', until: null }], deny: ['huggingface.co'] };
    expect(decide('later.example', ctx('strict', { runtime })).allowed).toBe(false);
    expect(decide('open.example', ctx('strict', { runtime })).allowed).toBe(true);
    expect(decide('huggingface.co', ctx('strict', { runtime })).allowed).toBe(false);
  });

  it('lets telemetry through before strict when BLOCK_TELEMETRY=false, AI likewise', () => {
    const open = { ...privacy, blockTelemetry: false, blockAiServices: false };
    expect(decide('api.mixpanel.com', ctx('startup', { config: open })).allowed).toBe(true);
    expect(decide('api.openai.com', ctx('downloads', { config: open })).allowed).toBe(true);
    expect(decide('api.openai.com', ctx('strict', { config: open })).allowed).toBe(false);
  });

  it('in lockdown blocks model sources and allowed hosts too', () => {
    for (const h of ['huggingface.co', 'allowed.example']) expect(decide(h, ctx('lockdown')).allowed).toBe(false);
  });

  it('with MONITORING_ONLY lets everything outside through, marked', () => {
    const d = decide('api.openai.com', ctx('lockdown', { config: { ...privacy, monitoringOnly: true } }));
    expect(d).toMatchObject({ allowed: true, wouldBlock: true });
    expect(d.rule).toMatch(/^monitoring only, would be blocked: lockdown/);
  });

  it('never proxies loopback or link-local addresses', () => {
    for (const h of ['127.0.0.1', 'localhost', '169.254.169.254', '::1']) {
      expect(decide(h, ctx('startup', { config: { ...privacy, monitoringOnly: true } })), h).toMatchObject({ allowed: false, category: 'local' });
    }
  });
});

describe('the pod\'s hosts', () => {
  it('takes model sources from the endpoints, the manifest and url models; git hosts from nodes; indexes from pip', async () => {
    const config = await testConfig({
      HF_ENDPOINT: 'https://hf-mirror.example',
      COMFY_CUSTOM_NODE_GIT_URLS: 'https://git.example/org/node',
      PIP_EXTRA_INDEX_URL: 'https://wheels.example/simple',
    });
    const h = podHosts(config);
    expect(h.modelSources).toEqual(expect.arrayContaining(['hf-mirror.example', 'civitai.com', '*.hf.co', 'drive.usercontent.google.com']));
    expect(h.gitHosts).toEqual(['git.example']);
    expect(h.packageIndexes).toEqual(expect.arrayContaining(['pypi.org', 'wheels.example']));
  });
});
