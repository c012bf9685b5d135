import { afterEach, describe, expect, it } from 'vitest';
import { ComfyProcess } from '../../src/comfyui/process.js';
import { call } from '../fixtures/http-call.js';
import { comfyPorts, makeWorkspace, silentLog, testConfig, type Workspace } from '../helpers.js';

/** Where ComfyUI listens, by COMFYUI_AUTH: only loopback behind the login, every interface without. */
describe('ComfyUI listen address', () => {
  let ws: Workspace | undefined;
  let comfy: ComfyProcess | undefined;
  afterEach(async () => {
    await comfy?.stop(5000);
    await ws?.cleanup();
  });

  async function start(env: Record<string, string>) {
    ws = await makeWorkspace();
    const config = await testConfig({ WORKSPACE: ws.dir, ...(await comfyPorts()), ...env });
    comfy = new ComfyProcess({
      python: config.comfyui.python,
      comfyuiDir: config.comfyui.dir,
      host: config.comfyui.listen.host,
      port: config.comfyui.listen.port,
      portVariable: config.comfyui.listen.variable,
      pidFile: `${ws.dir}/comfyui.pid`,
      env: config.comfyui.env,
      log: silentLog,
      onStatus: () => undefined,
    });
    await comfy.start(['--cpu']);
    return config;
  }

  it('listens on 127.0.0.1 and the internal port with COMFYUI_AUTH=on', async () => {
    const config = await start({});
    expect((await call(`http://127.0.0.1:${config.comfyui.listen.port}/system_stats`)).status).toBe(200);
    // 127.0.0.2 is loopback too, but not the address ComfyUI is bound to.
    await expect(call(`http://127.0.0.2:${config.comfyui.listen.port}/system_stats`)).rejects.toThrow(/ECONNREFUSED/);
    await expect(call(`http://127.0.0.1:${config.comfyui.port}/system_stats`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('listens on COMFYUI_PORT on every interface with COMFYUI_AUTH=off, as before', async () => {
    const config = await start({ COMFYUI_AUTH: 'off' });
    expect(config.comfyui.listen.port).toBe(config.comfyui.port);
    expect((await call(`http://127.0.0.2:${config.comfyui.port}/system_stats`)).status).toBe(200);
  });
});
