import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type RequestHandler } from 'express';
import { Gate } from '../access/gate.js';
import { loginRouter } from '../access/login.js';
import { requireLogin } from '../access/middleware.js';
import type { ThrottleOptions } from '../access/throttle.js';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { PodCounters } from '../fleet/counters.js';
import type { PodRegistry } from '../fleet/registry.js';
import type { Logger } from '../lib/log.js';
import { PrivacyStore } from '../privacy/store.js';
import type { FleetQueues } from '../queue/fleet.js';
import type { Queues } from '../queue/queues.js';
import { apiRouter } from './api.js';
import { startComfyProxy, type RunningComfyProxy } from './comfy-proxy.js';
import { errorHandler, requireRedis, type RedisAvailability } from './errors.js';
import type { FleetBoardQueues } from './fleet-board.js';
import { fleetApiRouter, fleetPage } from './fleet.js';
import { createMetrics, metricsBearer, metricsHandler } from './metrics.js';
import { privacyPage } from './privacy-page.js';
import { privacyRouter } from './privacy.js';
import { podStatus } from './status.js';

export interface BoardOptions {
  config: Config;
  /** The pod's queues and state; a fleet board that is no pod (`phoenix board --fleet`) has none. */
  queues?: Queues;
  pod?: PodState;
  /** The pod's download counters, for /metrics. */
  counters?: PodCounters;
  /** PHOENIX_FLEET: the fleet page and API, and every pod's queues on the board. */
  fleet?: { registry: PodRegistry; queues: FleetQueues; boardQueues: FleetBoardQueues };
  log: Logger;
  /** Port to listen on; defaults to PHOENIX_PORT (0 picks a free one). */
  port?: number;
  /** Port of the ComfyUI login proxy (COMFYUI_AUTH=on); defaults to COMFYUI_PORT (0 picks a free one). */
  comfyPort?: number;
  host?: string;
  /** The login throttle's timing (tests lengthen its lockouts). */
  loginThrottle?: ThrottleOptions;
  /** The API connection's health: while Redis is away, routes answer 503 with the reason. */
  redis?: RedisAvailability;
}

export interface RunningBoard {
  url: string;
  /** ComfyUI behind the login; undefined with COMFYUI_AUTH=off, or on a fleet board that is no pod. */
  comfyUrl: string | undefined;
  gate: Gate;
  close(): Promise<void>;
}

/**
 * Bull Board at /board/ (read-only), /status, the API, /metrics, the login routes and /healthz —
 * all but /healthz and the login behind the gate (/metrics also answers `Authorization: Bearer
 * $METRICS_TOKEN`). With `fleet`, the fleet page and API too, and the board shows every pod's queues.
 */
export function createApp(options: BoardOptions & { gate: Gate }): express.Express {
  const { config, queues, pod, log, fleet, gate } = options;
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  const metrics = metricsHandler(
    createMetrics({
      config,
      ...(queues && pod && options.counters ? { pod: { queues, state: pod, counters: options.counters } } : {}),
      ...(fleet ? { fleet: fleet.registry } : {}),
    }),
  );
  app.get('/metrics', metricsBearer(config.metricsToken, metrics));
  app.use(loginRouter(gate));
  app.use(requireLogin(gate));
  app.use(requireRedis(options.redis));
  app.get('/metrics', metrics);

  const board = new ExpressAdapter();
  board.setBasePath('/board');
  const bull = createBullBoard({
    // Read-only: job data steers the workers, so nobody edits, adds or retries jobs by hand.
    queues: queues && !fleet ? Object.values(queues.queue).map((q) => new BullMQAdapter(q, { readOnlyMode: true })) : [],
    serverAdapter: board,
    options: {
      uiConfig: {
        boardTitle: fleet ? 'Phoenix fleet' : 'Phoenix',
        ...(queues && pod ? { miscLinks: [{ text: 'Privacy', url: '/privacy' }] } : {}),
      },
    },
  });
  app.use('/board', onlyReads, board.getRouter());
  app.get('/', (_req, res) => res.redirect(fleet && !queues ? '/fleet' : '/board/'));
  void fleet?.boardQueues.start(bull.replaceQueues);

  if (queues && pod) {
    app.get('/status', async (_req, res) => {
      res.json(await podStatus(config, queues, pod));
    });
    const privacy = new PrivacyStore(queues, config);
    app.get('/privacy', async (_req, res) => {
      res.type('html').send(await privacyPage(config, privacy));
    });
    app.use('/api/privacy', privacyRouter(config, privacy));
    app.use('/api', apiRouter(config, queues, pod, log));
  }
  if (fleet) {
    app.get('/fleet', fleetPage(fleet.registry));
    app.use('/api/fleet', fleetApiRouter(fleet));
  }

  app.use(errorHandler(log, options.redis));
  return app;
}

/**
 * Bull Board's read-only mode answers its queue routes 405 but lets "pause all" through as a
 * no-op 200; this refuses every write the same way, whatever route a later version adds.
 */
const onlyReads: RequestHandler = (req, res, next) => {
  if (req.method === 'GET' || req.method === 'HEAD') next();
  else res.status(405).set('Allow', 'GET, HEAD').json({ error: 'the board is read-only; use the API (POST /api/models, /api/nodes)' });
};

/**
 * The board process's servers: the board and API on PHOENIX_PORT and, for a pod with
 * COMFYUI_AUTH=on, the login proxy on COMFYUI_PORT. Both share one Gate: one login, one throttle.
 */
export async function startBoard(options: BoardOptions): Promise<RunningBoard> {
  const { config, log } = options;
  const host = options.host ?? '0.0.0.0';
  const gate = await Gate.open({ config, log, ...(options.loginThrottle ? { throttle: options.loginThrottle } : {}) });
  const app = createApp({ ...options, gate });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(options.port ?? config.server.port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const url = `http://127.0.0.1:${port}`;
  const servesPod = options.queues !== undefined && options.pod !== undefined;
  let comfy: RunningComfyProxy | undefined;
  try {
    if (servesPod && config.comfyui.auth === 'on') {
      comfy = await startComfyProxy({ config, gate, log, port: options.comfyPort ?? config.comfyui.port, host });
    }
  } catch (err) {
    server.close();
    server.closeAllConnections();
    throw err;
  }
  log.info({ url: `${url}/board/`, username: config.server.username }, 'Bull Board, /status and the API are up');
  if (servesPod && config.comfyui.auth === 'off') {
    log.warn({ port: config.comfyui.port }, 'COMFYUI_AUTH=off: ComfyUI\'s port asks for no login; anyone who reaches it can run workflows and upload files');
  }
  announceGenerated(config, url);
  return {
    url,
    comfyUrl: comfy?.url,
    gate,
    close: async () => {
      await Promise.all([
        comfy?.close(),
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
      ]);
    },
  };
}

/** Generated credentials, shown once. Written past the logger on purpose: it redacts these values everywhere else. */
function announceGenerated(config: Config, url: string): void {
  const lines = [
    ...(config.server.passwordGenerated ? [`Phoenix login: ${url}/login  user: ${config.server.username}  password: ${config.server.password}`] : []),
    ...(config.server.apiTokenGenerated ? [`API token (Authorization: Bearer …): ${config.server.apiToken}`] : []),
  ];
  if (lines.length === 0) return;
  process.stdout.write(`\n${lines.join('\n')}\n(generated for this start; set PHOENIX_PASSWORD and PHOENIX_API_TOKEN to choose them)\n\n`);
}
