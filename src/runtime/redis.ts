import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config, RedisNode } from '../config/index.js';
import { stopChild } from '../lib/child.js';
import type { Logger } from '../lib/log.js';
import { PidFile } from '../lib/pidfile.js';
import type { RedisClient } from '../lib/redis-client.js';

/** Where Redis is: the pod's own unix socket, REDIS_URL, or a Redis Cluster (REDIS_CLUSTER). */
export type RedisTarget = { path: string } | { url: string } | { cluster: readonly RedisNode[]; url?: string };

export function redisTarget(config: Config): RedisTarget {
  if (config.redisCluster) return { cluster: config.redisCluster, ...(config.redisUrl ? { url: config.redisUrl } : {}) };
  if (!config.redisUrl) return { path: socketPath(config.stateDir) };
  // ioredis reads redis:// and rediss:// URLs; a unix:// URL names a socket path.
  if (config.redisUrl.startsWith('unix://')) return { path: new URL(config.redisUrl).pathname };
  return { url: config.redisUrl };
}

export function socketPath(stateDir: string): string {
  return path.join(stateDir, 'redis.sock');
}

/** Where Redis is, for logs and API answers: a socket path, or the URL without its credentials. */
export function describeTarget(target: RedisTarget): string {
  if ('path' in target) return target.path;
  if ('cluster' in target) return `the Redis Cluster at ${target.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
  const u = new URL(target.url);
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
}

/**
 * An ioredis client. Workers need `maxRetriesPerRequest: null` (blocking commands) and wait
 * through a Redis outage; an HTTP API fails fast instead of queueing commands while Redis is down,
 * and gives up on a Redis that stopped answering rather than hanging a request.
 */
export function connect(target: RedisTarget, purpose: 'worker' | 'api'): RedisClient {
  const options: RedisOptions =
    purpose === 'worker'
      ? { maxRetriesPerRequest: null }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 10_000 };
  return client(target, options);
}

function client(target: RedisTarget, options: RedisOptions): RedisClient {
  if ('cluster' in target) return clusterClient(target, options);
  return 'path' in target ? new Redis({ path: target.path, ...options }) : new Redis(target.url, options);
}

/**
 * A Redis Cluster client. REDIS_URL, when set, gives every node's login and TLS (`rediss://`);
 * BullMQ keeps each pod's keys in one slot through the hash tag in its prefix.
 */
function clusterClient(target: { cluster: readonly RedisNode[]; url?: string }, options: RedisOptions): Cluster {
  const url = target.url ? new URL(target.url) : undefined;
  const { enableOfflineQueue, ...perNode } = options;
  return new Cluster(
    target.cluster.map((n) => ({ host: n.host, port: n.port })),
    {
      ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
      redisOptions: {
        ...perNode,
        ...(url?.username ? { username: decodeURIComponent(url.username) } : {}),
        ...(url?.password ? { password: decodeURIComponent(url.password) } : {}),
        ...(url?.protocol === 'rediss:' ? { tls: { servername: url.hostname } } : {}),
      },
    },
  );
}

export interface EmbeddedRedisOptions {
  stateDir: string;
  /** AOF on, so queue state survives a restart (persistent storage). */
  persistent: boolean;
  log: Logger;
  /**
   * `phoenix up`: restart redis-server when it dies, up to this many times in a row (each logged,
   * with backoff), then call onGiveUp. 0 (default): it stays down and `exited` settles, so that
   * `phoenix redis` exits and supervisord restarts it.
   */
  restarts?: number;
  onGiveUp?: (err: Error) => void;
}

/** First restart delay; doubles with each restart in a row. */
const RESTART_DELAY_MS = 250;
/** A redis-server that stayed up this long starts the count of restarts in a row over. */
const STABLE_MS = 60_000;

/**
 * The Redis inside the pod: redis-server from PATH on a unix socket (no TCP port), noeviction
 * (BullMQ must never lose keys), AOF when storage is persistent. Owns the child's lifecycle,
 * including restarting it when it dies under `phoenix up`.
 */
export class EmbeddedRedis {
  readonly socket: string;
  private child: ResultPromise | undefined;
  private stopping = false;
  private restartsInARow = 0;
  /** When the running redis-server answered; 0 while none does. */
  private startedAt = 0;
  /** Restarts only follow a first start that worked: a first start that fails is its caller's error. */
  private everUp = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private settleExited: () => void = () => undefined;
  /** Settles when redis-server exits and is not restarted (stopped, or restarts off or given up). */
  readonly exited: Promise<void>;

  private readonly pidFile: PidFile;

  constructor(private readonly options: EmbeddedRedisOptions) {
    this.socket = socketPath(options.stateDir);
    this.pidFile = new PidFile(path.join(options.stateDir, 'redis-server.pid'));
    this.exited = new Promise((resolve) => {
      this.settleExited = resolve;
    });
  }

  async start(): Promise<RedisTarget> {
    const { stateDir, persistent, log } = this.options;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const leftover = await this.pidFile.stopLeftover(this.socket);
    if (leftover) log.warn({ pid: leftover }, 'stopped the redis-server an earlier run left behind');
    await rm(this.socket, { force: true });
    const child = execa('redis-server', redisServerArgs(stateDir, persistent), {
      stdio: ['ignore', 'pipe', 'pipe'],
      reject: false,
      cleanup: true,
    });
    this.child = child;
    if (child.pid) await this.pidFile.write(child.pid);
    child.stdout?.on('data', (d: Buffer) => log.debug({ redis: d.toString().trim() }, 'redis-server'));
    const died = child.then((r) => {
      throw new Error(`redis-server exited (${r.exitCode ?? r.signal}): ${String(r.stderr || r.stdout).slice(-400)}`);
    });
    died.catch((err: Error) => this.onExit(child, err));
    await Promise.race([waitForPing({ path: this.socket }), died]);
    this.startedAt = Date.now();
    this.everUp = true;
    log.info({ socket: this.socket, persistent, pid: child.pid }, 'redis-server is up');
    return { path: this.socket };
  }

  /** SHUTDOWN (with an AOF rewrite when persistent), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child) await stopChild(child, 3000);
    this.child = undefined;
    await this.pidFile.clear();
    this.settleExited();
  }

  private onExit(child: ResultPromise, err: Error): void {
    if (child !== this.child || this.stopping) return;
    const max = this.options.restarts ?? 0;
    if (max === 0 || !this.everUp) {
      this.settleExited();
      return;
    }
    if (this.startedAt > 0 && Date.now() - this.startedAt >= STABLE_MS) this.restartsInARow = 0;
    this.startedAt = 0;
    if (this.restartsInARow >= max) {
      this.options.log.fatal({ err: err.message, restarts: this.restartsInARow }, 'redis-server keeps dying; giving up on it');
      this.settleExited();
      this.options.onGiveUp?.(new Error(`redis-server could not be kept running (${this.restartsInARow} restarts in a row): ${err.message}`));
      return;
    }
    this.restartsInARow += 1;
    const delayMs = RESTART_DELAY_MS * 2 ** (this.restartsInARow - 1);
    this.options.log.error(
      { err: err.message, restart: this.restartsInARow, of: max, inMs: delayMs },
      'redis-server died; restarting it',
    );
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      // A redis-server that died is handled by onExit; one that is up but never answered is stopped, and its exit counts.
      this.start().catch(() => {
        const c = this.child;
        if (c && c.exitCode === null && c.signalCode === null) void stopChild(c, 1000);
      });
    }, delayMs);
  }
}

/** The command line for the pod's redis-server; supervisord.conf mirrors it. */
export function redisServerArgs(stateDir: string, persistent: boolean): string[] {
  return [
    '--port', '0',
    '--unixsocket', socketPath(stateDir),
    '--unixsocketperm', '700',
    '--dir', stateDir,
    '--maxmemory-policy', 'noeviction',
    '--save', '',
    '--appendonly', persistent ? 'yes' : 'no',
    '--appendfsync', 'everysec',
    '--daemonize', 'no',
  ];
}

async function waitForPing(target: RedisTarget, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = client(target, { lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`redis did not answer within ${timeoutMs / 1000}s: ${(err as Error).message}`);
      await sleep(100);
    } finally {
      probe.disconnect();
    }
  }
}

/** Resolves once the connection is usable (an API connection does not queue commands before). */
export function whenReady(connection: RedisClient, timeoutMs = 15_000): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis not ready within ${timeoutMs / 1000}s`)), timeoutMs);
    connection.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
