import type { IncomingHttpHeaders } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import { UserError } from '../lib/errors.js';
import { USER_AGENT, secretHeadersFor } from '../lib/http.js';
import type { DownloadRequest } from './types.js';

export interface OpenedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

const MAX_REDIRECTS = 10;

/**
 * Opens GET requests for one file over keep-alive connections, through undici's dispatcher
 * interface: each body chunk is handed to a callback as the Buffer undici parsed, with no stream
 * in between. Receiving is most of what the event loop does during a download, and this path costs
 * markedly less CPU than node:http's IncomingMessage (bench/RESULTS.md has the figures).
 *
 * Redirects are followed by hand under lib/http's secretHeadersFor rule: the request's secret
 * headers go only to `headersOrigin`. Once a request has been answered, later ones go
 * straight to the URL that answered, carrying the secrets only if that URL is on their origin.
 */
export class Connector {
  private readonly secretOrigin: string;
  private resolvedUrl: string | undefined;
  private readonly agent: Agent;

  constructor(
    private readonly request: DownloadRequest,
    connections: number,
  ) {
    this.secretOrigin = request.headersOrigin ?? new URL(request.url).origin;
    // The engine's own stall watchdog decides when a silent connection is dropped.
    this.agent = new Agent({ connections, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
  }

  /** Where the file is, for messages: origin and path, never the query (it may hold a token). */
  get where(): string {
    const url = new URL(this.request.url);
    return `${url.origin}${url.pathname}`;
  }

  async open(headers: Record<string, string>, signal: AbortSignal): Promise<OpenedResponse> {
    let current = this.resolvedUrl ?? this.request.url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const url = new URL(current);
      const response = await this.once(url, headers, signal);
      const location = response.headers.location;
      if (response.status >= 300 && response.status < 400 && typeof location === 'string') {
        response.body.discard();
        current = new URL(location, current).toString();
        continue;
      }
      this.resolvedUrl = current;
      return response;
    }
    throw new UserError(`too many redirects starting at ${this.where}`);
  }

  close(): void {
    void this.agent.destroy().catch(() => undefined);
  }

  private once(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<OpenedResponse> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new UserError(`refusing to download from ${url.protocol} URL ${url.origin}`);
    }
    const secret = secretHeadersFor(url, this.secretOrigin, this.request.headers);
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const body = new ResponseBody();
      let started = false;
      // Settles the open at once, also while the request still waits for a free connection.
      const abort = (): void => {
        if (!started) reject(signal.reason as Error);
        body.destroy(signal.reason as Error);
      };
      signal.addEventListener('abort', abort, { once: true });
      const forget = (): void => signal.removeEventListener('abort', abort);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(controller) {
          body.attach(controller);
        },
        onResponseStart(controller, statusCode, responseHeaders) {
          // 1xx answers are not the response.
          if (statusCode < 200) return;
          started = true;
          // Bytes wait in the socket until someone consumes the body.
          controller.pause();
          resolve({ status: statusCode, headers: responseHeaders as IncomingHttpHeaders, body });
        },
        onResponseData(_controller, chunk) {
          body.push(chunk);
        },
        onResponseEnd() {
          forget();
          body.end();
        },
        onResponseError(_controller, err) {
          forget();
          if (started) body.fail(err);
          else reject(err);
        },
      };
      this.agent.dispatch(
        {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: 'GET',
          headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...headers, ...secret },
        },
        handler,
      );
    });
  }
}

/**
 * A response body delivered to one consumer callback. The connection stays paused until
 * `consume` is called, and the consumer may pause it again while its writes catch up.
 */
export class ResponseBody {
  private controller: Dispatcher.DispatchController | undefined;
  private sink: ((chunk: Buffer) => void) | undefined;
  private early: Buffer[] = [];
  private outcome: { error?: Error } | undefined;
  private settle: { resolve: () => void; reject: (err: Error) => void } | undefined;

  /** Hands every chunk to `sink` until the body ends; rejects when the connection fails or is destroyed. */
  consume(sink: (chunk: Buffer) => void): Promise<void> {
    if (this.sink) throw new Error('response body consumed twice');
    this.sink = sink;
    const done = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    for (const chunk of this.early.splice(0)) sink(chunk);
    if (this.outcome) this.finish();
    else this.controller?.resume();
    return done;
  }

  /** Reads and drops the rest of the body, keeping the connection reusable. */
  discard(): void {
    void this.consume(() => undefined).catch(() => undefined);
  }

  pause(): void {
    if (!this.outcome) this.controller?.pause();
  }

  resume(): void {
    if (!this.outcome) this.controller?.resume();
  }

  /** Drops the connection; a consumer sees `reason`. */
  destroy(reason: Error = new Error('response body destroyed')): void {
    if (this.outcome) return;
    this.controller?.abort(reason);
    this.fail(reason);
  }

  /** @internal Called by the connector. */
  attach(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Destroyed while it waited for a connection: the request is dropped before it is sent.
    if (this.outcome?.error) controller.abort(this.outcome.error);
  }

  /** @internal */
  push(chunk: Buffer): void {
    // Nothing is delivered once the body has ended, failed or been destroyed.
    if (this.outcome) return;
    if (!this.sink) {
      this.early.push(chunk);
      return;
    }
    try {
      this.sink(chunk);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  /** @internal */
  end(): void {
    this.outcome ??= {};
    this.finish();
  }

  /** @internal */
  fail(error: Error): void {
    this.outcome ??= { error };
    this.finish();
  }

  private finish(): void {
    if (!this.settle || !this.outcome) return;
    const { resolve, reject } = this.settle;
    this.settle = undefined;
    if (this.outcome.error) reject(this.outcome.error);
    else resolve();
  }
}

/** `Content-Range: bytes a-b/total` → [a, b + 1) and total (undefined for `*`). */
export function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return undefined;
  return {
    start: Number(match[1]),
    end: Number(match[2]) + 1,
    total: match[3] === '*' ? undefined : Number(match[3]),
  };
}
