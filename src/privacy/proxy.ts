import type { Socket } from 'node:net';
import { RequestError, Server, type ConnectionStats, type PrepareRequestFunctionOpts } from 'proxy-chain';
import type { PrivacyConfig } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import type { PodHosts } from './hosts.js';
import { peerUid, UserNames } from './peer-user.js';
import { decide, type Decision, type Phase, type RuntimeRules } from './policy.js';
import type { ConnectionRecord, PrivacyStore } from './store.js';

/**
 * Phoenix's egress proxy for ComfyUI and its children (HTTP_PROXY / HTTPS_PROXY point here): plain
 * HTTP requests and CONNECT tunnels, each decided by host when it opens (proxy-chain does the
 * protocol). A decision holds for the life of its connection: a phase change never cuts a download
 * in progress; only a lockdown closes open connections. Every connection is recorded with its
 * bytes and the process user that opened it.
 */

export interface EgressProxyOptions {
  store: PrivacyStore;
  privacy: PrivacyConfig;
  hosts: PodHosts;
  log: Logger;
  /** 0 picks a free port. */
  port?: number;
}

/**
 * A connection's request being served, recorded when the next request on it starts or it closes.
 * Its bytes are the client socket's since the previous request's record (the first one's from
 * zero, so the request itself counts).
 */
interface Pending {
  record: Omit<ConnectionRecord, 'bytesSent' | 'bytesReceived' | 'durationMs'>;
  readAtStart: number;
  writtenAtStart: number;
}

export class EgressProxy {
  private readonly server: Server;
  private readonly users = new WeakMap<Socket, Promise<string>>();
  private readonly pending = new Map<number, Pending>();
  /** Client socket bytes already counted in an earlier record of the same connection. */
  private readonly counted = new WeakMap<Socket, { read: number; written: number }>();
  private readonly names = new UserNames();

  constructor(private readonly options: EgressProxyOptions) {
    this.server = new Server({
      port: options.port ?? 0,
      host: '127.0.0.1',
      authRealm: 'Phoenix',
      prepareRequestFunction: (opts) => this.prepare(opts),
    });
    // Learn the client's user as soon as it connects, while its socket is surely listed.
    this.server.server.on('connection', (socket: Socket) => {
      this.users.set(socket, this.userOf(socket));
    });
    this.server.on('connectionClosed', ({ connectionId, stats }: { connectionId: number; stats?: ConnectionStats }) => {
      const p = this.pending.get(connectionId);
      if (p && stats) void this.finish(connectionId, p, stats.srcRxBytes, stats.srcTxBytes);
    });
  }

  /** Starts listening on 127.0.0.1 and returns the proxy's URL. */
  async start(): Promise<string> {
    await this.server.listen();
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  /** Closes every open connection (lockdown). */
  closeAll(): void {
    this.server.closeConnections();
  }

  async stop(): Promise<void> {
    await this.server.close(true);
  }

  private async prepare(opts: PrepareRequestFunctionOpts): Promise<undefined> {
    const socket = opts.request.socket;
    const user = await (this.users.get(socket) ?? this.userOf(socket));
    const { phase, decision } = await this.decision(opts.hostname);
    const record = {
      time: Date.now(),
      host: opts.hostname,
      port: opts.port,
      method: opts.isHttp ? 'HTTP' : 'CONNECT',
      user,
      phase,
      allowed: decision.allowed,
      wouldBlock: decision.wouldBlock,
      category: decision.category,
      rule: decision.rule,
    } as const;
    const previous = this.pending.get(opts.connectionId);
    if (previous) {
      this.counted.set(socket, { read: socket.bytesRead, written: socket.bytesWritten });
      await this.finish(opts.connectionId, previous, socket.bytesRead, socket.bytesWritten);
    }
    if (!decision.allowed) {
      await this.save({ ...record, bytesSent: 0, bytesReceived: 0, durationMs: 0 });
      this.options.log.info({ host: opts.hostname, port: opts.port, user, rule: decision.rule }, 'privacy: connection blocked');
      throw new RequestError(`Blocked by Phoenix privacy: ${opts.hostname} (${decision.rule})\n`, 403);
    }
    const start = this.counted.get(socket) ?? { read: 0, written: 0 };
    this.pending.set(opts.connectionId, { record, readAtStart: start.read, writtenAtStart: start.written });
    return undefined;
  }

  /**
   * The phase and the decision from the shared state. When that state cannot be read (Redis
   * down), the safe answer is the strict phase with the configured lists only.
   */
  private async decision(host: string): Promise<{ phase: Phase; decision: Decision }> {
    const { store, privacy, hosts, log } = this.options;
    let phase: Phase = 'strict';
    let runtime: RuntimeRules = { allow: [], deny: [] };
    try {
      [phase, runtime] = await Promise.all([store.phase(), store.rules()]);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'privacy state unreadable: deciding as in the strict phase');
    }
    return { phase, decision: decide(host, { phase, config: privacy, hosts, runtime, now: Date.now() }) };
  }

  private async finish(connectionId: number, p: Pending, read: number, written: number): Promise<void> {
    this.pending.delete(connectionId);
    await this.save({
      ...p.record,
      bytesSent: Math.max(0, read - p.readAtStart),
      bytesReceived: Math.max(0, written - p.writtenAtStart),
      durationMs: Date.now() - p.record.time,
    });
  }

  private async save(record: ConnectionRecord): Promise<void> {
    await this.options.store.record(record).catch((err: Error) => this.options.log.warn({ err: err.message }, 'cannot record a connection'));
  }

  private async userOf(socket: Socket): Promise<string> {
    const uid = await peerUid({
      clientAddress: socket.remoteAddress ?? '',
      clientPort: socket.remotePort ?? 0,
      serverAddress: socket.localAddress ?? '',
      serverPort: socket.localPort ?? 0,
    });
    return this.names.name(uid);
  }
}
