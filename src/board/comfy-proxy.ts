import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import express from 'express';
import { createProxyServer } from 'httpxy';
import type { Gate } from '../access/gate.js';
import { loginRouter } from '../access/login.js';
import { requireLogin, refuseUpgrade } from '../access/middleware.js';
import { wantsPage, withoutCookie } from '../access/request.js';
import { SESSION_COOKIE } from '../access/sessions.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import { errorHandler } from './errors.js';

export interface ComfyProxyOptions {
  config: Config;
  gate: Gate;
  log: Logger;
  port: number;
  host: string;
}

export interface RunningComfyProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * COMFYUI_PORT with COMFYUI_AUTH=on: Phoenix's login in front of the ComfyUI that listens on
 * 127.0.0.1. Requests, uploads, streamed answers and WebSockets (`/ws`, the frontend's live
 * channel) pass through httpxy as streams, never buffered. Phoenix's own credentials (the session
 * cookie, the Authorization header) are taken off before anything reaches ComfyUI, so neither
 * ComfyUI nor the custom nodes it runs ever see them.
 */
export async function startComfyProxy(options: ComfyProxyOptions): Promise<RunningComfyProxy> {
  const { config, gate, log } = options;
  const target = `http://127.0.0.1:${config.comfyui.listen.port}`;
  const proxy = createProxyServer({ target, changeOrigin: false });
  proxy.on('error', (err, req, res) => {
    log.debug({ err: err.message, url: req?.url }, 'ComfyUI did not answer the proxy');
    if (res && 'writeHead' in res) unavailable(req, res);
    else res?.destroy();
  });

  const app = express();
  app.disable('x-powered-by');
  app.use(loginRouter(gate));
  app.use(requireLogin(gate));
  app.use((req, res) => {
    stripCredentials(req);
    void proxy.web(req, res);
  });
  app.use(errorHandler(log, undefined));

  const server: Server = createServer(app);
  // An upload may take longer than Node's default five minutes for a whole request.
  server.requestTimeout = 0;
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const verdict = gate.check(req, { upgrade: true });
    if (!verdict.ok) {
      refuseUpgrade(socket, verdict);
      return;
    }
    stripCredentials(req);
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    void proxy.ws(req, socket as Socket, {}, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  log.info({ port, comfyui: target }, 'ComfyUI is served behind the login');
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of upgraded) socket.destroy();
      }),
  };
}

/** Phoenix's credentials stay with Phoenix: ComfyUI gets the request without them. */
function stripCredentials(req: IncomingMessage): void {
  delete req.headers.authorization;
  const cookies = req.headers.cookie;
  if (cookies === undefined) return;
  const rest = withoutCookie(cookies, SESSION_COOKIE);
  if (rest) req.headers.cookie = rest;
  else delete req.headers.cookie;
}

/** ComfyUI is not up yet (it starts once its models and nodes are in) or is restarting. */
function unavailable(req: IncomingMessage | undefined, res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const message = 'ComfyUI is not answering yet: it starts once its models and custom nodes are in place, or it is restarting';
  if (req && wantsPage(req)) {
    res.writeHead(502, { 'content-type': 'text/html; charset=utf-8', refresh: '5', 'cache-control': 'no-store' });
    res.end(`<!doctype html><meta charset="utf-8"><title>ComfyUI is starting</title><p>${message}. This page reloads every 5 seconds; progress is on the board's /status.</p>\n`);
    return;
  }
  res.writeHead(502, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: message }));
}
