import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type ErrorRequestHandler } from 'express';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { PodCounters } from '../fleet/counters.js';
import type { PodRegistry } from '../fleet/registry.js';
import type { Logger } from '../lib/log.js';
import { PrivacyStore } from '../privacy/store.js';
import type { FleetQueues } from '../queue/fleet.js';
import type { Queues } from '../queue/queues.js';
import { apiRouter } from './api.js';
import { basicAuth } from './auth.js';
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
  host?: string;
}

export interface RunningBoard {
  url: string;
  close(): Promise<void>;
}

/**
 * Bull Board at /board/, /status, the API, /metrics and /healthz — all but /healthz behind Basic
 * auth (/metrics also answers `Authorization: Bearer $METRICS_TOKEN`). With `fleet`, the fleet
 * page and API too, and the board shows every pod's queues.
 */
export function createApp(options: BoardOptions): express.Express {
  const { config, queues, pod, log, fleet } = options;
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
  app.use(basicAuth(config.server.username, config.server.password));
  app.get('/metrics', metrics);

  const board = new ExpressAdapter();
  board.setBasePath('/board');
  const bull = createBullBoard({
    queues: queues && !fleet ? Object.values(queues.queue).map((q) => new BullMQAdapter(q)) : [],
    serverAdapter: board,
    options: {
      uiConfig: {
        boardTitle: fleet ? 'Phoenix fleet' : 'Phoenix',
        ...(queues && pod ? { miscLinks: [{ text: 'Privacy', url: '/privacy' }] } : {}),
      },
    },
  });
  app.use('/board', board.getRouter());
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

  const onError: ErrorRequestHandler = (err: Error & { status?: number; type?: string }, _req, res, _next) => {
    if (err.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'invalid JSON', problems: [`body: ${err.message}`] });
      return;
    }
    log.error({ err: err.message }, 'request failed');
    res.status(err.status && err.status >= 400 && err.status < 500 ? err.status : 500).json({ error: err.message });
  };
  app.use(onError);
  return app;
}

export async function startBoard(options: BoardOptions): Promise<RunningBoard> {
  const { config, log } = options;
  const app = createApp(options);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(options.port ?? config.server.port, options.host ?? '0.0.0.0', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const url = `http://127.0.0.1:${port}`;
  log.info({ url: `${url}/board/`, username: config.server.username }, 'Bull Board, /status and the API are up');
  if (config.server.passwordGenerated) {
    // Written past the logger on purpose: the logger redacts this value everywhere else.
    process.stdout.write(
      `\nPhoenix board: ${url}/board/  user: ${config.server.username}  password: ${config.server.password}\n` +
        `(generated for this start; set PHOENIX_PASSWORD to choose one)\n\n`,
    );
  }
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
