import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { loadConfig, type Config } from '../src/config/index.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const STANDIN_MAIN = path.join(REPO_ROOT, 'test/fixtures/comfyui/main.py');
export const silentLog = pino({ level: 'silent' });

export interface Workspace {
  dir: string;
  comfyDir: string;
  cleanup(): Promise<void>;
}

/** A fresh workspace with the stand-in ComfyUI checkout in it. */
export async function makeWorkspace(): Promise<Workspace> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'phoenix-ws-'));
  const comfyDir = path.join(dir, 'ComfyUI');
  await mkdir(comfyDir, { recursive: true });
  await copyFile(STANDIN_MAIN, path.join(comfyDir, 'main.py'));
  return { dir, comfyDir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Configuration as a pod would read it, from a plain environment (never the test runner's own),
 * with an API token set, so a board started in the test process prints no generated one.
 */
export function testConfig(env: Record<string, string>): Promise<Config> {
  return loadConfig({ PATH: process.env.PATH ?? '', COMFYUI_PYTHON: 'python3', PHOENIX_API_TOKEN: 'test-api-token-0123456789', ...env });
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as import('node:net').AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * COMFYUI_PORT and COMFYUI_INTERNAL_PORT, both free: left unset, the internal port is derived
 * (COMFYUI_PORT + 10000), which another server on the machine may hold.
 */
export async function comfyPorts(): Promise<{ COMFYUI_PORT: string; COMFYUI_INTERNAL_PORT: string }> {
  return { COMFYUI_PORT: String(await freePort()), COMFYUI_INTERNAL_PORT: String(await freePort()) };
}

/** Polls until `check` returns a value (not undefined/false) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether a process still exists. */
export { isRunning as isAlive } from '../src/lib/pidfile.js';

/** Writes a TOML manifest into a fresh temp folder (or `dir`) and returns its path. */
export async function writeManifest(text: string, dir?: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const folder = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'phoenix-manifest-')));
  const file = path.join(folder, 'models.toml');
  await writeFile(file, text);
  return file;
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject');
}
