import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

describe('privacy configuration', () => {
  it('defaults to off outside the image, blocking telemetry and AI services once on, with a 300 s grace period', async () => {
    const c = await loadConfig({});
    expect(c.privacy).toEqual({ enabled: false, blockTelemetry: true, blockAiServices: true, monitoringOnly: false, graceMs: 300_000, allow: [], deny: [] });
    expect(c.comfyui.user).toBeUndefined();
  });

  it('reads every variable, normalizing host patterns', async () => {
    const c = await loadConfig({
      PRIVACY_ENABLED: 'true',
      BLOCK_TELEMETRY: 'false',
      BLOCK_AI_SERVICES: 'no',
      MONITORING_ONLY: '1',
      DOWNLOAD_GRACE_PERIOD: '2',
      PRIVACY_ALLOW: 'Models.Example.com., *.cdn.example',
      PRIVACY_DENY: '10.1.2.3',
      COMFYUI_USER: 'comfy',
    });
    expect(c.privacy).toEqual({
      enabled: true,
      blockTelemetry: false,
      blockAiServices: false,
      monitoringOnly: true,
      graceMs: 2000,
      allow: ['models.example.com', '*.cdn.example'],
      deny: ['10.1.2.3'],
    });
    expect(c.comfyui.user).toBe('comfy');
  });

  it('refuses bad patterns and a bad grace period, naming each', async () => {
    const err = await loadConfig({ PRIVACY_ALLOW: 'ok.example,bad host', PRIVACY_DENY: '*.com', DOWNLOAD_GRACE_PERIOD: 'soon' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      expect.stringMatching(/^DOWNLOAD_GRACE_PERIOD: must be a whole number/),
      'PRIVACY_ALLOW[1]: "bad host" is not a host name, *.domain pattern or IP address',
      'PRIVACY_DENY[0]: "*.com" covers a whole top-level domain; name a domain below it',
    ]);
  });
});
