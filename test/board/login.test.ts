import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STACK_PASSWORD, STACK_TOKEN, startBoardStack, type BoardStack } from '../fixtures/board-stack.js';
import { basic, call, sessionCookie, signIn, upgradeStatus } from '../fixtures/http-call.js';

/**
 * One login for every port, over real HTTP: the board on one host name, ComfyUI's proxy on
 * another (127.0.0.1 and 127.0.0.2, as RunPod gives each port its own host).
 */
describe('login on every port', () => {
  let stack: BoardStack;
  let board: string;
  let comfy: string;
  const admin = basic('admin', STACK_PASSWORD);
  // The test connects from loopback, a trusted proxy by default: X-Forwarded-For names the client,
  // so each test throttles its own made-up address.
  const from = (address: string) => ({ 'x-forwarded-for': address });

  beforeAll(async () => {
    // Lockouts start at 3 s, so the checks made while one lasts never race its end on a busy machine.
    stack = await startBoardStack({ RUNPOD_POD_ID: 'testpod' }, { loginThrottle: { baseDelayMs: 3000 } });
    board = `http://127.0.0.1:${stack.boardPort}`;
    comfy = `http://127.0.0.2:${stack.comfyPort}`;
  });
  afterAll(async () => {
    await stack.close();
  });

  it('sends a page load to the login form and a script to a 401, on both ports', async () => {
    for (const [origin, path] of [[board, '/board/'], [comfy, '/']] as const) {
      const page = await call(`${origin}${path}`, { headers: { accept: 'text/html,application/xhtml+xml' } });
      expect(page.status, origin).toBe(302);
      expect(page.headers.location).toBe(`/login?next=${encodeURIComponent(path)}`);
      const script = await call(`${origin}/system_stats`);
      expect(script.status).toBe(401);
      expect(script.json()).toEqual({ error: 'authentication required' });
      expect(script.headers['www-authenticate']).toMatch(/^Basic realm="Phoenix"/);
      // A browser's own script gets no Basic challenge (no password dialog over the page).
      expect((await call(`${origin}/system_stats`, { headers: { 'sec-fetch-site': 'same-origin' } })).headers['www-authenticate']).toBeUndefined();
      const form = await call(`${origin}/login?next=/x`);
      expect(form.status).toBe(200);
      expect(form.text).toContain('<form method="post" action="/login">');
      expect(form.text).toContain('name="next" value="/x"');
    }
    expect((await call(`${board}/healthz`)).status).toBe(200);
  });

  it('signs in with a form on one host and the same session works on the other', async () => {
    const answer = await call(`${board}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', origin: board, ...from('198.51.100.10') },
      body: new URLSearchParams({ username: 'admin', password: STACK_PASSWORD, next: '/board/' }).toString(),
    });
    expect(answer.status).toBe(303);
    expect(answer.headers.location).toBe('/board/');
    const set = answer.headers['set-cookie']!.find((c) => c.startsWith('phoenix_session='))!;
    expect(set).toMatch(/; Path=\//);
    expect(set).toMatch(/; HttpOnly/);
    expect(set).toMatch(/; SameSite=Lax/);
    expect(set).not.toMatch(/Secure/);
    const cookie = sessionCookie(answer);

    expect((await call(`${board}/status`, { headers: { cookie } })).status).toBe(200);
    expect((await call(`${comfy}/system_stats`, { headers: { cookie } })).status).toBe(200);
    expect((await call(`${comfy}/login`, { headers: { cookie } })).text).toContain('Sign out');

    // Each host offers its own form; behind https the cookie is Secure.
    const viaHttps = await call(`${comfy}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https', ...from('198.51.100.10') },
      body: JSON.stringify({ username: 'admin', password: STACK_PASSWORD }),
    });
    expect(viaHttps.status).toBe(200);
    expect(viaHttps.headers['set-cookie']!.join()).toMatch(/; Secure/);
    expect((await call(`${board}/status`, { headers: { cookie: sessionCookie(viaHttps) } })).status).toBe(200);
  });

  it('takes Basic auth and the API token from scripts, on both ports', async () => {
    const bearer = { authorization: `Bearer ${STACK_TOKEN}` };
    for (const headers of [admin, bearer]) {
      expect((await call(`${board}/status`, { headers })).status).toBe(200);
      expect((await call(`${comfy}/system_stats`, { headers })).status).toBe(200);
    }
    expect((await call(`${board}/status`, { headers: { authorization: 'Bearer not-the-token', ...from('198.51.100.11') } })).status).toBe(401);
    expect((await call(`${comfy}/system_stats`, { headers: { ...basic('admin', 'wrong-password'), ...from('198.51.100.11') } })).status).toBe(401);
  });

  it('ends a session everywhere on logout, and keeps sessions across a board restart', async () => {
    const cookie = await signIn(board, 'admin', STACK_PASSWORD);
    const copy = cookie;
    await stack.restartBoard();
    board = `http://127.0.0.1:${stack.boardPort}`;
    expect((await call(`${comfy}/system_stats`, { headers: { cookie } })).status).toBe(200);

    const out = await call(`${comfy}/logout`, { method: 'POST', headers: { cookie, accept: 'text/html' } });
    expect(out.status).toBe(303);
    expect(out.headers.location).toBe('/login');
    expect(out.headers['set-cookie']!.join()).toMatch(/phoenix_session=;/);
    // The copy of the cookie, sent anywhere, no longer opens anything.
    expect((await call(`${board}/status`, { headers: { cookie: copy } })).status).toBe(401);
    expect((await call(`${comfy}/system_stats`, { headers: { cookie: copy } })).status).toBe(401);
    expect((await upgradeStatus(`${comfy}/ws`, { cookie: copy })).status).toBe(401);
  });

  it('throttles failed logins per client on every path, then answers 429 with Retry-After', async () => {
    const attacker = from('203.0.113.50');
    const session = await signIn(board, 'admin', STACK_PASSWORD, attacker);
    const form = (password: string, origin = comfy) =>
      call(`${origin}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', ...attacker },
        body: new URLSearchParams({ username: 'admin', password }).toString(),
      });
    expect((await form('guess-1')).status).toBe(401);
    expect((await call(`${board}/status`, { headers: { ...basic('admin', 'guess-2'), ...attacker } })).status).toBe(401);
    expect((await call(`${comfy}/system_stats`, { headers: { authorization: 'Bearer guess-3', ...attacker } })).status).toBe(401);
    // The fourth failure locks the client out (for 3 s here; 1 s by default), a fifth would double it.
    expect((await upgradeStatus(`${comfy}/ws`, { ...basic('admin', 'guess-4'), ...attacker })).status).toBe(401);

    const locked = await call(`${board}/status`, { headers: { ...admin, ...attacker } });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(locked.json().error).toMatch(/too many failed logins/);
    const lockedForm = await form(STACK_PASSWORD, board);
    expect(lockedForm.status).toBe(429);
    expect(lockedForm.text).toContain('too many failed logins');
    expect((await upgradeStatus(`${comfy}/ws`, { ...admin, ...attacker })).status).toBe(429);

    // Other clients, and sessions already open, are not affected.
    expect((await call(`${board}/status`, { headers: { ...admin, ...from('203.0.113.51') } })).status).toBe(200);
    expect((await call(`${board}/status`, { headers: { cookie: session, ...attacker } })).status).toBe(200);

    await new Promise((r) => setTimeout(r, Number(locked.headers['retry-after']) * 1000 + 50));
    expect((await call(`${board}/status`, { headers: { ...admin, ...attacker } })).status).toBe(200);
    // A success starts the count afresh.
    expect((await form('guess-5')).status).toBe(401);
  });

  it('refuses mutating requests and WebSockets from another site', async () => {
    const cookie = await signIn(board, 'admin', STACK_PASSWORD);
    const model = JSON.stringify({ source: 'url', url: 'https://example.com/o.safetensors', category: 'loras' });
    const post = (origin: string, headers: Record<string, string>, body = model) =>
      call(`${origin}`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, ...headers }, body });

    const evil = await post(`${board}/api/models`, { origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(evil.json().error).toMatch(/another site/);
    expect((await post(`${board}/api/models`, { referer: 'https://evil.example/page' })).status).toBe(403);
    expect((await post(`${board}/api/models`, { origin: comfy })).status).toBe(403);
    expect((await post(`${board}/api/models`, { origin: board })).status).toBe(202);
    expect((await post(`${board}/api/models`, {})).status).toBe(202);
    // RunPod's host name for this pod and port is this host too, whatever Host its proxy forwards.
    expect((await post(`${board}/api/models`, { origin: `https://testpod-${stack.boardPort}.proxy.runpod.net` })).status).toBe(202);
    expect((await post(`${board}/api/models`, { origin: `https://otherpod-${stack.boardPort}.proxy.runpod.net` })).status).toBe(403);
    expect((await post(`${board}/api/models`, { origin: `https://testpod-${stack.comfyPort}.proxy.runpod.net` })).status).toBe(403);
    expect((await post(`${comfy}/upload`, { origin: 'https://evil.example' }, 'x')).status).toBe(403);
    expect((await call(`${board}/logout`, { method: 'POST', headers: { cookie, origin: 'https://evil.example' } })).status).toBe(403);
    expect((await call(`${board}/status`, { headers: { cookie } })).status).toBe(200);
    const signIn403 = await call(`${comfy}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: `username=admin&password=${STACK_PASSWORD}`,
    });
    expect(signIn403.status).toBe(403);
    expect(signIn403.headers['set-cookie']).toBeUndefined();

    expect((await upgradeStatus(`${comfy}/ws`, { cookie, origin: 'https://evil.example' })).status).toBe(403);
    expect((await upgradeStatus(`${comfy}/ws`, { cookie, origin: comfy })).status).toBe(101);
  });

  it('answers a sign-in with a broken JSON body with 400 as JSON, on both ports', async () => {
    for (const origin of [board, comfy]) {
      const res = await call(`${origin}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username": ' });
      expect(res.status, origin).toBe(400);
      expect(res.json().error).toBe('invalid JSON');
    }
  });

  it('reports the login in /status', async () => {
    const status = (await call(`${board}/status`, { headers: admin })).json<{ comfyui: { auth: string; port: number } }>();
    expect(status.comfyui).toMatchObject({ auth: 'on', port: stack.comfyPort });
  });
});
