import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/lib/log.js';
import { STACK_PASSWORD, startBoardStack, type BoardStack } from '../fixtures/board-stack.js';
import { basic, call } from '../fixtures/http-call.js';

/** COMFYUI_AUTH=off: for users with their own proxy in front, ComfyUI's port is ComfyUI, open. */
describe('COMFYUI_AUTH=off', () => {
  let stack: BoardStack;
  let logged = '';

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        logged += chunk.toString();
        done();
      },
    });
    stack = await startBoardStack({ COMFYUI_AUTH: 'off' }, { log: createLogger({ secrets: [], debug: false, destination }) });
  });
  afterAll(async () => {
    await stack.close();
  });

  it('leaves the port to ComfyUI, without a login, and says so in the log and /status', async () => {
    expect(stack.board.comfyUrl).toBeUndefined();
    expect(stack.comfy.port).toBe(stack.comfyPort);
    const open = await call(`http://127.0.0.2:${stack.comfyPort}/system_stats`);
    expect(open.status).toBe(200);
    expect(open.json()).toMatchObject({ system: { comfyui_version: '0.0.0-standin' } });
    expect(logged).toMatch(/COMFYUI_AUTH=off: ComfyUI's port asks for no login/);

    const status = (await call(`http://127.0.0.1:${stack.boardPort}/status`, { headers: basic('admin', STACK_PASSWORD) })).json<{ comfyui: unknown }>();
    expect(status.comfyui).toMatchObject({ auth: 'off', port: stack.comfyPort });
    // The board keeps its login.
    expect((await call(`http://127.0.0.1:${stack.boardPort}/status`)).status).toBe(401);
  });
});
