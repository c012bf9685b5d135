import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';

/** Debian's chromium (scripts/setup.sh installs it); Playwright's own browser downloads are not used. */
export const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface LoginFlowTarget {
  /** The board's origin, e.g. http://127.0.0.1:8189. */
  board: string;
  /** ComfyUI's public origin on another host name, as RunPod gives each port its own. */
  comfy: string;
  username: string;
  password: string;
}

/**
 * What a user does in a real browser: the board sends them to its login form; a wrong password is
 * refused; the right one opens the board, whose page then loads its queues; ComfyUI's host asks
 * for its own login (cookies are per host), then shows ComfyUI's page, whose WebSocket gets a
 * message from ComfyUI; signing out there ends the session. Throws at the first step that fails.
 */
export async function browserLoginFlow(target: LoginFlowTarget, say: (step: string) => void = () => undefined): Promise<void> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'phoenix-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30_000 });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(10_000);

    await page.goto(`${target.board}/board/`);
    assert.equal(page.url(), `${target.board}/login?next=%2Fboard%2F`, 'the board sends a browser to its login form');
    say('the board asks for a login');

    const refused = await signIn(page, target.username, `${target.password}-wrong`);
    assert.equal(refused, 401, 'a wrong password is answered 401');
    assert.match((await page.locator('p.error').textContent()) ?? '', /wrong user name, password or token/);
    assert.ok(page.url().startsWith(`${target.board}/login`), 'a wrong password stays on the login form');
    say('a wrong password is refused');

    await signIn(page, target.username, target.password);
    await page.waitForURL(`${target.board}/board/`);
    // Bull Board's page fetches its queues with the session cookie.
    await page.getByText('download', { exact: true }).first().waitFor();
    say('the right password opens the board');

    await page.goto(`${target.comfy}/`);
    assert.equal(page.url(), `${target.comfy}/login?next=%2F`, "ComfyUI's host asks for its own login");
    await signIn(page, target.username, target.password);
    await page.waitForURL(`${target.comfy}/`);
    await page.locator('body[data-ws="message"]').waitFor({ state: 'attached' });
    assert.match((await page.locator('#ws').textContent()) ?? '', /^message: .*"type": "status"/);
    say("ComfyUI's page is served and its WebSocket receives a message");

    await page.goto(`${target.comfy}/login`);
    await page.locator('#logout').click();
    await page.waitForURL(`${target.comfy}/login`);
    await page.goto(`${target.comfy}/`);
    assert.equal(page.url(), `${target.comfy}/login?next=%2F`, 'after signing out ComfyUI asks for a login again');
    say('signing out ends the session');
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Fills the login form and submits it; resolves with the HTTP status of the answer. */
async function signIn(page: Page, username: string, password: string): Promise<number> {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'), page.locator('button[type=submit]').click()]);
  await page.waitForLoadState();
  return response.status();
}
