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

/**
 * An ioredis client. Workers need `maxRetriesPerRequest: null` (blocking commands); an HTTP
 * API should fail fast instead of queueing commands while Redis is down.
 */
export function connect(target: RedisTarget, purpose: 'worker' | 'api'): RedisClient {
  const options: RedisOptions =
    purpose === 'worker' ? { maxRetriesPerRequest: null } : { maxRetriesPerRequest: 1, enableOfflineQueue: false };
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
}

/**
 * The Redis inside the pod: redis-server from PATH on a unix socket (no TCP port), noeviction
 * (BullMQ must never lose keys), AOF when storage is persistent. Owns the child's lifecycle.
 */
export class EmbeddedRedis {
  readonly socket: string;
  private child: ResultPromise | undefined;
  /** Settles when redis-server exits, for whatever reason. */
  exited: Promise<void> = Promise.resolve();

  private readonly pidFile: PidFile;

  constructor(private readonly options: EmbeddedRedisOptions) {
    this.socket = socketPath(options.stateDir);
    this.pidFile = new PidFile(path.join(options.stateDir, 'redis-server.pid'));
  }

  async start(): Promise<RedisTarget> {
    const { stateDir, persistent, log } = this.options;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const leftover = await this.pidFile.stopLeftover(this.socket);
    if (leftover) log.warn({ pid: leftover }, 'stopped the redis-server an earlier run left behind');
    await rm(this.socket, { force: true });
    this.child = execa('redis-server', redisServerArgs(stateDir, persistent), {
      stdio: ['ignore', 'pipe', 'pipe'],
      reject: false,
      cleanup: true,
    });
    if (this.child.pid) await this.pidFile.write(this.child.pid);
    this.child.stdout?.on('data', (d: Buffer) => log.debug({ redis: d.toString().trim() }, 'redis-server'));
    const exited = this.child.then((r) => {
      throw new Error(`redis-server exited (${r.exitCode ?? r.signal}): ${String(r.stderr || r.stdout).slice(-400)}`);
    });
    exited.catch(() => undefined);
    this.exited = exited.catch(() => undefined);
    await Promise.race([waitForPing({ path: this.socket }), exited]);
    log.info({ socket: this.socket, persistent }, 'redis-server is up');
    return { path: this.socket };
  }

  /** SHUTDOWN (with an AOF rewrite when persistent), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    await stopChild(child, 3000);
    this.child = undefined;
    await this.pidFile.clear();
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
