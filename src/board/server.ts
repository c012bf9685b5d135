import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import type { PodState } from '../comfyui/pod-state.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import type { Queues } from '../queue/queues.js';
import { apiRouter } from './api.js';
import { basicAuth } from './auth.js';
import { errorHandler, requireRedis, type RedisAvailability } from './errors.js';
import { podStatus } from './status.js';

export interface BoardOptions {
  config: Config;
  queues: Queues;
  pod: PodState;
  log: Logger;
  /** Port to listen on; defaults to PHOENIX_PORT (0 picks a free one). */
  port?: number;
  host?: string;
  /** The API connection's health: while Redis is away, routes answer 503 with the reason. */
  redis?: RedisAvailability;
}

export interface RunningBoard {
  url: string;
  close(): Promise<void>;
}

/** Bull Board at /board/, /status, the API, and /healthz — all but /healthz behind Basic auth. */
export function createApp(options: BoardOptions): express.Express {
  const { config, queues, pod, log } = options;
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(basicAuth(config.server.username, config.server.password));
  app.use(requireRedis(options.redis));

  const board = new ExpressAdapter();
  board.setBasePath('/board');
  createBullBoard({
    queues: Object.values(queues.queue).map((q) => new BullMQAdapter(q)),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'Phoenix' } },
  });
  app.use('/board', board.getRouter());
  app.get('/', (_req, res) => res.redirect('/board/'));

  app.get('/status', async (_req, res) => {
    res.json(await podStatus(config, queues, pod));
  });
  app.use('/api', apiRouter(config, queues, log));

  app.use(errorHandler(log, options.redis));
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
