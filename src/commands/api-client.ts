import { ConfigError, type Config } from '../config/index.js';

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
}

/** Calls the running board's API on this pod with the configured login. */
export async function callApi<T = unknown>(config: Config, route: string, init: RequestInit = {}): Promise<ApiAnswer<T>> {
  if (config.server.passwordGenerated) throw new ConfigError(['PHOENIX_PASSWORD: needed to call the running board\'s API']);
  const res = await fetch(`http://127.0.0.1:${config.server.port}${route}`, {
    ...init,
    headers: {
      authorization: `Basic ${Buffer.from(`${config.server.username}:${config.server.password}`).toString('base64')}`,
      'content-type': 'application/json',
    },
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as T };
}
