import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Connector } from '../../src/download/connector.js';
import { type FixtureServer, startFixtureServer } from '../fixtures/http-server.js';
import { eventually } from '../helpers.js';

const BODY = randomBytes(8 * 1024 * 1024);
const BODY_SHA = sha256(BODY);
let server: FixtureServer;
/** Responses the server could not finish because the client closed the connection. */
let cutShort = 0;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

beforeAll(async () => {
  server = await startFixtureServer((_req, res, url) => {
    if (url.pathname === '/cut') {
      // Promises the whole body, sends half of it, then drops the connection.
      res.writeHead(200, { 'content-length': BODY.length });
      res.write(BODY.subarray(0, BODY.length / 2), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    if (url.pathname === '/big') {
      // 16 × the body: more than the kernel's socket buffers hold, so only a closed connection ends it.
      res.writeHead(200, { 'content-length': BODY.length * 16 });
      res.on('close', () => {
        if (!res.writableFinished) cutShort++;
      });
      let sent = 0;
      const more = (): void => {
        while (sent < 16 && res.write(BODY)) sent++;
        if (sent === 16) res.end();
        else res.once('drain', () => {
          sent++;
          more();
        });
      };
      more();
      return;
    }
    if (url.pathname === '/silent') return; // accepts the request and never answers
    if (url.pathname === '/moved') {
      res.writeHead(302, { location: '/file', 'content-length': 5 });
      res.end('moved');
      return;
    }
    res.writeHead(200, { 'content-length': BODY.length });
    res.end(BODY);
  });
});
afterAll(async () => {
  await server.close();
});

function abortAfter(ms: number, reason: Error): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(reason), ms);
  return controller.signal;
}

function connector(path: string): Connector {
  return new Connector({ url: `${server.url}${path}`, headers: {} }, 2);
}

async function collect(consume: (sink: (chunk: Buffer) => void) => Promise<void>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await consume((chunk) => chunks.push(chunk));
  return Buffer.concat(chunks);
}

describe('Connector response bodies', () => {
  it('holds the body until it is consumed and loses no byte', async () => {
    const c = connector('/file');
    try {
      const response = await c.open({}, new AbortController().signal);
      expect(response.status).toBe(200);
      expect(response.headers['content-length']).toBe(String(BODY.length));
      await sleep(200);
      const received = await collect((sink) => response.body.consume(sink));
      expect(received.length).toBe(BODY.length);
      expect(sha256(received)).toBe(BODY_SHA);
    } finally {
      c.close();
    }
  });

  it('pauses and resumes at the consumer’s request', async () => {
    const c = connector('/file');
    try {
      const { body } = await c.open({}, new AbortController().signal);
      const chunks: Buffer[] = [];
      let pauses = 0;
      await body.consume((chunk) => {
        chunks.push(chunk);
        if (chunks.length % 16 === 1) {
          pauses++;
          body.pause();
          setTimeout(() => body.resume(), 20);
        }
      });
      expect(pauses).toBeGreaterThan(1);
      expect(sha256(Buffer.concat(chunks))).toBe(BODY_SHA);
    } finally {
      c.close();
    }
  });

  it('rejects the consumer when the connection drops mid-body', async () => {
    const c = connector('/cut');
    try {
      const { body } = await c.open({}, new AbortController().signal);
      let bytes = 0;
      await expect(body.consume((chunk) => (bytes += chunk.length))).rejects.toThrow();
      expect(bytes).toBeGreaterThan(0);
      expect(bytes).toBeLessThan(BODY.length);
    } finally {
      c.close();
    }
  });

  it('rejects the consumer with the abort reason and closes the connection when the signal fires mid-body', async () => {
    const c = connector('/big');
    try {
      const stop = new AbortController();
      const { body } = await c.open({}, stop.signal);
      const reason = new Error('stalled');
      await expect(
        body.consume(() => {
          body.pause();
          stop.abort(reason);
        }),
      ).rejects.toBe(reason);
      await eventually(() => cutShort === 1, 5_000, 'the server to see the connection closed');
    } finally {
      c.close();
    }
  });

  it('turns an error thrown by the consumer into the consume rejection', async () => {
    const c = connector('/file');
    try {
      const { body } = await c.open({}, new AbortController().signal);
      const failure = new Error('disk full');
      await expect(
        body.consume(() => {
          throw failure;
        }),
      ).rejects.toBe(failure);
    } finally {
      c.close();
    }
  });

  it('follows a redirect, discarding its body, and keeps the connection usable', async () => {
    const c = connector('/moved');
    try {
      const first = await c.open({}, new AbortController().signal);
      expect(sha256(await collect((sink) => first.body.consume(sink)))).toBe(BODY_SHA);
      const before = server.requests.length;
      const second = await c.open({ range: 'bytes=0-9' }, new AbortController().signal);
      await collect((sink) => second.body.consume(sink));
      // Later requests go straight to where the redirect led.
      expect(server.requests.slice(before).map((r) => r.path)).toEqual(['/file']);
    } finally {
      c.close();
    }
  });

  it('gives up on a server that never answers when the signal fires', async () => {
    const c = connector('/silent');
    try {
      const reason = new Error('no byte for 0.2s');
      await expect(c.open({}, abortAfter(200, reason))).rejects.toBe(reason);
    } finally {
      c.close();
    }
  });

  it('gives up on a request still waiting for a free connection when the signal fires', async () => {
    const c = new Connector({ url: `${server.url}/file`, headers: {} }, 1);
    try {
      // Holds the only connection: its body is never consumed.
      await c.open({}, new AbortController().signal);
      const before = server.requests.length;
      const reason = new Error('shutting down');
      await expect(c.open({}, abortAfter(200, reason))).rejects.toBe(reason);
      expect(server.requests.length).toBe(before);
    } finally {
      c.close();
    }
  });

  it('refuses an already aborted signal without sending anything', async () => {
    const c = connector('/file');
    try {
      const before = server.requests.length;
      const stop = new AbortController();
      stop.abort(new Error('shutting down'));
      await expect(c.open({}, stop.signal)).rejects.toThrow('shutting down');
      expect(server.requests.length).toBe(before);
    } finally {
      c.close();
    }
  });
});
