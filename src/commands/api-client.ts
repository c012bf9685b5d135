import { ConfigError, type Config } from '../config/index.js';

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
}

/** Calls the running board's API on this pod: with PHOENIX_API_TOKEN when set, else the login. */
export async function callApi<T = unknown>(config: Config, route: string, init: RequestInit = {}): Promise<ApiAnswer<T>> {
  const { server } = config;
  let authorization: string;
  if (!server.apiTokenGenerated) authorization = `Bearer ${server.apiToken}`;
  else if (!server.passwordGenerated) authorization = `Basic ${Buffer.from(`${server.username}:${server.password}`).toString('base64')}`;
  else throw new ConfigError(["PHOENIX_PASSWORD (or PHOENIX_API_TOKEN): needed to call the running board's API"]);
  const res = await fetch(`http://127.0.0.1:${server.port}${route}`, {
    ...init,
    headers: { authorization, 'content-type': 'application/json' },
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as T };
}
