import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { comfyPorts, REPO_ROOT, freePort, makeWorkspace, type Workspace } from './helpers.js';

/** `npm run demo` as a user runs it, stopping once ready. */
describe('the demo', () => {
  let ws: Workspace;
  let out: { stdout: string; stderr: string; exitCode: number | undefined };

  beforeAll(async () => {
    ws = await makeWorkspace();
    const r = await execa(path.join(REPO_ROOT, 'node_modules/.bin/tsx'), ['scripts/demo.ts'], {
      cwd: REPO_ROOT,
      reject: false,
      timeout: 90_000,
      env: {
        DEMO_EXIT_WHEN_READY: '1',
        DEMO_WORKSPACE: path.join(ws.dir, 'demo'),
        PHOENIX_PORT: String(await freePort()),
        ...(await comfyPorts()),
      },
    });
    out = { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode };
  }, 120_000);
  afterAll(async () => {
    await ws.cleanup();
  });

  it('reaches ready and keeps the terminal to its progress view', () => {
    expect(out.exitCode, out.stderr).toBe(0);
    // Every model and node of the fixture hub, all of them verified or installed.
    expect(out.stdout).toMatch(/Ready: (\d+)\/\1 models verified, (\d+)\/\2 custom nodes/);
    for (const text of [out.stdout, out.stderr]) expect(text).not.toMatch(/"level":\d+/);
  });

  it('keeps the JSON log lines in a file it names', async () => {
    const logFile = path.join(ws.dir, 'demo', 'phoenix.log');
    expect(out.stdout).toContain(`Logs:        ${logFile}`);
    const lines = (await readFile(logFile, 'utf8')).trim().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
    expect(lines.some((l) => l.includes('ComfyUI is up'))).toBe(true);
  });
});
