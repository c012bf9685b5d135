import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STACK_PASSWORD, STACK_TOKEN, startBoardStack, type BoardStack } from '../fixtures/board-stack.js';
import { basic, call, openWebSocket, roundTrip, signIn } from '../fixtures/http-call.js';
import { eventually } from '../helpers.js';

/** ComfyUI behind the login: what passes through the proxy, and how (streams, never buffers). */
describe('ComfyUI proxy', () => {
  let stack: BoardStack;
  let comfy: string;
  let direct: string;
  let cookie: string;

  beforeAll(async () => {
    stack = await startBoardStack();
    comfy = `http://127.0.0.1:${stack.comfyPort}`;
    direct = stack.comfy.url;
    cookie = await signIn(comfy, 'admin', STACK_PASSWORD);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('keeps ComfyUI on 127.0.0.1 and serves it on the public port', async () => {
    expect(stack.config.comfyui.listen).toEqual({ host: '127.0.0.1', port: stack.comfy.port, variable: 'COMFYUI_INTERNAL_PORT' });
    const stats = await call(`${comfy}/system_stats`, { headers: { cookie } });
    expect(stats.status).toBe(200);
    expect(stats.json()).toMatchObject({ system: { comfyui_version: '0.0.0-standin' } });
    // Bound to 127.0.0.1 only: another loopback address does not reach it.
    await expect(call(`http://127.0.0.2:${stack.comfy.port}/system_stats`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("takes Phoenix's credentials off before ComfyUI sees the request", async () => {
    const variants: Record<string, string>[] = [
      { cookie: `comfy-ui-setting=1; ${cookie}; other=2` },
      { ...basic('admin', STACK_PASSWORD), cookie: 'comfy-ui-setting=1' },
      { authorization: `Bearer ${STACK_TOKEN}` },
    ];
    for (const headers of variants) {
      const seen = (await call(`${comfy}/echo`, { headers })).json<{ headers: Record<string, string> }>().headers;
      expect(seen.authorization).toBeUndefined();
      expect(JSON.stringify(seen)).not.toContain('phoenix_session');
      expect(JSON.stringify(seen)).not.toContain(STACK_PASSWORD);
      expect(JSON.stringify(seen)).not.toContain(STACK_TOKEN);
      if (headers.cookie) expect(seen.cookie).toBe(headers.cookie.includes('other') ? 'comfy-ui-setting=1; other=2' : 'comfy-ui-setting=1');
      // The Host the browser used reaches ComfyUI, whose own origin check compares it with Origin.
      expect(seen.host).toBe(`127.0.0.1:${stack.comfyPort}`);
    }
  });

  it('streams a large upload to ComfyUI as it arrives', async () => {
    const size = 64 * 1024 * 1024;
    const body = randomBytes(size);
    const firstPart = 8 * 1024 * 1024;
    const answer = new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const req = http.request(`${comfy}/upload?id=big`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/octet-stream', 'content-length': String(size) },
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as { bytes: number; sha256: string }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, firstPart));
      // Only once ComfyUI has received part of the body does the rest follow: a proxy that
      // waited for the whole body would never get there.
      eventually(async () => {
        const { received } = (await call(`${direct}/upload/progress?id=big`)).json<{ received: number }>();
        return received > 0 && received <= firstPart;
      }, 10_000, 'ComfyUI receiving the upload before it is complete').then(
        () => req.end(body.subarray(firstPart)),
        (err: Error) => {
          req.destroy();
          reject(err);
        },
      );
    });
    expect(await answer).toEqual({ bytes: size, sha256: createHash('sha256').update(body).digest('hex') });
  });

  it('passes a streamed answer on as it comes', async () => {
    const res = await fetch(`${comfy}/stream`, { headers: { cookie } });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    // The first chunk arrives while ComfyUI still holds the rest back.
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toBe('first\n');
    await call(`${direct}/stream/release`);
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    expect(rest).toBe('rest\n');
  });

  it("passes ComfyUI's WebSocket both ways, for a session or a token", async () => {
    const variants: Record<string, string>[] = [{ cookie, origin: comfy }, { authorization: `Bearer ${STACK_TOKEN}` }];
    for (const headers of variants) {
      const { socket, first } = await openWebSocket(`${comfy.replace('http', 'ws')}/ws?clientId=test`, headers);
      expect(JSON.parse(first)).toMatchObject({ type: 'status', data: { sid: 'standin' } });
      expect(await roundTrip(socket, 'ping from the browser')).toBe('ping from the browser');
      const large = 'x'.repeat(200_000);
      expect(await roundTrip(socket, large)).toBe(large);
      socket.close();
    }
    await expect(openWebSocket(`${comfy.replace('http', 'ws')}/ws`)).rejects.toThrow(/failed/);
  });

  it('answers 502 while ComfyUI is down, a page that reloads itself for browsers', async () => {
    await stack.comfy.stop();
    const script = await call(`${comfy}/system_stats`, { headers: { cookie } });
    expect(script.status).toBe(502);
    expect(script.json().error).toMatch(/ComfyUI is not answering yet/);
    const page = await call(`${comfy}/`, { headers: { cookie, accept: 'text/html' } });
    expect(page.status).toBe(502);
    expect(page.headers.refresh).toBe('5');
  });
});
