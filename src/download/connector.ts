import http from 'node:http';
import https from 'node:https';
import { UserError } from '../lib/errors.js';
import { USER_AGENT } from '../lib/http.js';
import type { DownloadRequest } from '../sources/types.js';

export interface OpenedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

const MAX_REDIRECTS = 10;

/**
 * Opens GET requests for one file over keep-alive sockets. node:http is used rather than fetch:
 * bodies arrive as Buffers that go straight to writev and the hash, with no web-stream layer and
 * one socket pool whose size is the connection count.
 *
 * Redirects are followed by hand with the same rule as lib/http's fetchFollowing: the request's
 * secret headers go only to `headersOrigin`. Once a request has been answered, later ones go
 * straight to the URL that answered, carrying the secrets only if that URL is on their origin.
 */
export class Connector {
  private readonly secretOrigin: string;
  private resolvedUrl: string | undefined;
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(
    private readonly request: DownloadRequest,
    connections: number,
  ) {
    this.secretOrigin = request.headersOrigin ?? new URL(request.url).origin;
    const agentOptions = { keepAlive: true, maxSockets: connections, scheduling: 'lifo' as const };
    this.agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
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
      if (response.statusCode && response.statusCode >= 300 && response.statusCode < 400 && location) {
        response.resume();
        current = new URL(location, current).toString();
        continue;
      }
      this.resolvedUrl = current;
      return { status: response.statusCode ?? 0, headers: response.headers, body: response };
    }
    throw new UserError(`too many redirects starting at ${this.where}`);
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private once(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<http.IncomingMessage> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new UserError(`refusing to download from ${url.protocol} URL ${url.origin}`);
    }
    const secret = url.origin === this.secretOrigin ? this.request.headers : {};
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.request(
        url,
        {
          method: 'GET',
          headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...headers, ...secret },
          agent: url.protocol === 'https:' ? this.agents.https : this.agents.http,
          signal,
        },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
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
