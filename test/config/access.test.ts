import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { problemsOf } from './problems.js';

describe('login and port settings', () => {
  it('puts ComfyUI behind the login on an internal port by default', async () => {
    const c = await loadConfig({});
    expect(c.comfyui.auth).toBe('on');
    expect(c.comfyui.port).toBe(8188);
    expect(c.comfyui.listen).toEqual({ host: '127.0.0.1', port: 18188, variable: 'COMFYUI_INTERNAL_PORT' });
    expect((await loadConfig({ COMFYUI_PORT: '60000' })).comfyui.listen.port).toBe(50000);
    expect((await loadConfig({ COMFYUI_INTERNAL_PORT: '3000' })).comfyui.listen.port).toBe(3000);
    expect(c.server.trustedProxies).toEqual(['loopback']);
  });

  it('lets ComfyUI listen on COMFYUI_PORT itself with COMFYUI_AUTH=off', async () => {
    const c = await loadConfig({ COMFYUI_AUTH: 'OFF', COMFY_ARGS: '--listen 0.0.0.0' });
    expect(c.comfyui.auth).toBe('off');
    expect(c.comfyui.listen).toEqual({ host: null, port: 8188, variable: 'COMFYUI_PORT' });
  });

  it('generates a password of 20+ characters and a token, both secret and kept from ComfyUI', async () => {
    const c = await loadConfig({ PATH: '/usr/bin' });
    expect(c.server.passwordGenerated && c.server.apiTokenGenerated).toBe(true);
    expect(c.server.password.length).toBeGreaterThanOrEqual(20);
    expect(c.server.apiToken.length).toBeGreaterThanOrEqual(40);
    expect(c.secrets).toEqual(expect.arrayContaining([c.server.password, c.server.apiToken]));

    const dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-token-'));
    await writeFile(path.join(dir, 'token'), 'token-from-a-file-0123\n');
    const set = await loadConfig({ PATH: '/usr/bin', PHOENIX_API_TOKEN_FILE: path.join(dir, 'token') });
    expect(set.server).toMatchObject({ apiToken: 'token-from-a-file-0123', apiTokenGenerated: false });
    const scripted = await loadConfig({ PATH: '/usr/bin', PHOENIX_API_TOKEN: 'a-token-set-by-the-user' });
    expect(scripted.comfyui.env).toEqual({ PATH: '/usr/bin' });
  });

  it('lists every login and port problem at once, each naming its variable', async () => {
    const problems = await problemsOf({
      PHOENIX_PASSWORD: 'short-pass1',
      PHOENIX_API_TOKEN: 'short-token',
      COMFYUI_AUTH: 'maybe',
      PHOENIX_PORT: '8188',
      COMFY_ARGS: '--listen 0.0.0.0 --port=9000 --lowvram',
      PHOENIX_TRUSTED_PROXIES: 'loopback,10.0.0.0/8,proxy.runpod.net',
    });
    expect(problems).toEqual([
      'COMFYUI_AUTH: must be on or off',
      'PHOENIX_PASSWORD: must be at least 12 characters',
      'PHOENIX_API_TOKEN: must be at least 16 characters',
      'PHOENIX_PORT: 8188 is already COMFYUI_PORT; each server needs its own port',
      'COMFY_ARGS: --port is set by Phoenix; choose the port with COMFYUI_PORT',
      expect.stringMatching(/^COMFY_ARGS: --listen is set by Phoenix .*COMFYUI_AUTH=off/),
      'PHOENIX_TRUSTED_PROXIES: "proxy.runpod.net" is not an IP address, a CIDR range, or one of loopback, linklocal, uniquelocal',
    ]);
    expect(await problemsOf({ COMFYUI_INTERNAL_PORT: '8189' })).toEqual(['COMFYUI_INTERNAL_PORT: 8189 is already PHOENIX_PORT; each server needs its own port']);
    expect((await loadConfig({ PHOENIX_PASSWORD: 'twelve-chars' })).server.password).toBe('twelve-chars');
  });
});
