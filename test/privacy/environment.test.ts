import { describe, expect, it } from 'vitest';
import type { PrivacyConfig } from '../../src/config/index.js';
import { TELEMETRY_SWITCHES, disableApiNodes, privacyEnvironment } from '../../src/privacy/environment.js';

const on: PrivacyConfig = { enabled: true, blockTelemetry: true, blockAiServices: true, monitoringOnly: false, graceMs: 0, allow: [], deny: [] };

describe('ComfyUI\'s environment with privacy on', () => {
  it('points both spellings of the proxy variables at the proxy, keeps loopback direct and drops ALL_PROXY', () => {
    const env = privacyEnvironment({ PATH: '/bin', ALL_PROXY: 'socks5://elsewhere:1080', HTTPS_PROXY: 'http://corp:3128' }, on, 'http://127.0.0.1:4000');
    expect(env).toMatchObject({
      PATH: '/bin',
      HTTP_PROXY: 'http://127.0.0.1:4000',
      HTTPS_PROXY: 'http://127.0.0.1:4000',
      http_proxy: 'http://127.0.0.1:4000',
      https_proxy: 'http://127.0.0.1:4000',
      NO_PROXY: 'localhost,127.0.0.1,::1',
      no_proxy: 'localhost,127.0.0.1,::1',
    });
    expect(env.ALL_PROXY).toBeUndefined();
  });

  it('turns the telemetry switches on with BLOCK_TELEMETRY, not otherwise nor when only monitoring', () => {
    expect(privacyEnvironment({}, on, 'http://p')).toMatchObject({ HF_HUB_DISABLE_TELEMETRY: '1', DO_NOT_TRACK: '1', GRADIO_ANALYTICS_ENABLED: 'False' });
    for (const c of [{ ...on, blockTelemetry: false }, { ...on, monitoringOnly: true }]) {
      const env = privacyEnvironment({}, c, 'http://p');
      for (const name of Object.keys(TELEMETRY_SWITCHES)) expect(env[name], name).toBeUndefined();
    }
  });

  it('asks for --disable-api-nodes only when privacy blocks AI services for real', () => {
    expect(disableApiNodes(on)).toBe(true);
    expect(disableApiNodes({ ...on, enabled: false })).toBe(false);
    expect(disableApiNodes({ ...on, blockAiServices: false })).toBe(false);
    expect(disableApiNodes({ ...on, monitoringOnly: true })).toBe(false);
  });
});
