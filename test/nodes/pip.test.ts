import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { UserError } from '../../src/lib/errors.js';
import { installNode } from '../../src/nodes/install.js';
import { installPythonPackages } from '../../src/nodes/pip.js';
import { GitHost } from '../fixtures/git-repos.js';
import { writeFakePython, type FakePython } from './fake-python.js';

let host: GitHost;
let dir: string;
let comfy: string;
let fake: FakePython;
/** The environment the workers give git, pip and install.py: the configuration's, secrets removed. */
let podEnv: Readonly<Record<string, string>>;

const INSTALL_PY = `import json, os, pathlib
env = {k: os.environ.get(k) for k in ("PIP_CONSTRAINT", "HF_TOKEN", "CIVITAI_TOKEN", "GITHUB_TOKEN")}
pathlib.Path("installed.marker").write_text(json.dumps(env))
print("install.py done")
`;

beforeAll(async () => {
  // Secrets in Phoenix's own environment must not reach a node's code.
  process.env.HF_TOKEN = 'hf_secret_value';
  process.env.CIVITAI_TOKEN = 'civitai_secret_value';
  process.env.GITHUB_TOKEN = 'github_secret_value';
  podEnv = (await loadConfig(process.env)).comfyui.env;
  host = await GitHost.start();
  dir = await mkdtemp(path.join(tmpdir(), 'phoenix-pip-'));
  comfy = path.join(dir, 'ComfyUI');
  fake = await writeFakePython(path.join(dir, 'bin'), {
    installed: { torch: '2.5.1+cu124', torchvision: '0.20.1', numpy: '1.26.4', Pillow: '10.4.0', 'nvidia-cudnn-cu12': '9.1.0.70', aiohttp: '3.10.5' },
    installMs: 200,
  });
});
afterAll(async () => {
  delete process.env.HF_TOKEN;
  delete process.env.CIVITAI_TOKEN;
  delete process.env.GITHUB_TOKEN;
  await host.close();
  await rm(dir, { recursive: true, force: true });
});

async function nodeRepo(name: string, requirements: string, withInstallPy = false) {
  return host.createRepo(name, {
    '__init__.py': 'NODE_CLASS_MAPPINGS = {}\n',
    'requirements.txt': requirements,
    ...(withInstallPy ? { 'install.py': INSTALL_PY } : {}),
  });
}

function installWithLog(name: string, url: string) {
  const lines: string[] = [];
  const done = installNode({ node: { name, url }, comfyuiDir: comfy, python: fake.python, env: podEnv, onOutput: (l) => lines.push(l) });
  return { lines, done };
}

describe('node requirements', () => {
  it('installs requirements.txt under constraints that pin the torch stack, then runs install.py', async () => {
    const repo = await nodeRepo('Node-Good', 'opencv-python\nnumpy>=1.20\n', true);
    const { lines, done } = installWithLog('Node-Good', repo.url);
    await done;

    const call = (await fake.pipCalls()).find((c) => c.cwd.endsWith('Node-Good'));
    expect(call?.ok).toBe(true);
    expect(call?.argv).toEqual(expect.arrayContaining(['-m', 'pip', 'install', '-r', 'requirements.txt', '-c']));
    expect(call?.requirements).toEqual(['opencv-python', 'numpy>=1.20']);
    expect(call?.constraints.sort()).toEqual(['Pillow==10.4.0', 'numpy==1.26.4', 'nvidia-cudnn-cu12==9.1.0.70', 'torch==2.5.1+cu124', 'torchvision==0.20.1']);

    const env = JSON.parse(await readFile(path.join(comfy, 'custom_nodes', 'Node-Good', 'installed.marker'), 'utf8')) as Record<string, string | null>;
    expect(env.PIP_CONSTRAINT).toMatch(/constraints\.txt$/); // pip calls inside install.py are held too
    await expect(stat(env.PIP_CONSTRAINT!)).rejects.toThrow(); // and the file is cleaned up afterwards
    expect(env.HF_TOKEN).toBeNull();
    expect(env.CIVITAI_TOKEN).toBeNull();
    expect(env.GITHUB_TOKEN).toBeNull();
    expect(lines).toContain('install.py done');
    expect(lines.some((l) => l.startsWith('Successfully installed'))).toBe(true);
  });

  it('fails a node that would replace torch, with pip\'s error in its output, without blocking another node', async () => {
    const bad = await nodeRepo('Node-Bad', 'torch>=9\n');
    const good = await nodeRepo('Node-Fine', 'requests\n');
    const badRun = installWithLog('Node-Bad', bad.url);
    const goodRun = installWithLog('Node-Fine', good.url);
    const [badResult, goodResult] = await Promise.allSettled([badRun.done, goodRun.done]);

    expect(badResult.status).toBe('rejected');
    const err = (badResult as PromiseRejectedResult).reason as Error;
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/custom node Node-Bad: pip install -r requirements.txt failed \(exit 1\)/);
    expect(err.message).toContain('ResolutionImpossible');
    expect(badRun.lines.join('\n')).toContain('The user requested torch>=9');
    expect(goodResult.status).toBe('fulfilled');
  });

  it('runs pip for one node at a time', async () => {
    const repos = await Promise.all(['A', 'B', 'C'].map((n) => nodeRepo(`Node-Serial-${n}`, `package-${n.toLowerCase()}\n`)));
    await Promise.all(repos.map((r, i) => installWithLog(`Node-Serial-${'ABC'[i]}`, r.url).done));
    const calls = (await fake.pipCalls()).filter((c) => c.cwd.includes('Node-Serial-')).sort((a, b) => a.start - b.start);
    expect(calls).toHaveLength(3);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.start).toBeGreaterThanOrEqual(calls[i - 1]!.end);
  });
});

describe('installPythonPackages', () => {
  it('installs EXTRA_PYTHON_PACKAGES under the same constraints', async () => {
    const lines: string[] = [];
    await installPythonPackages({ packages: ['onnxruntime-gpu==1.20.1', 'insightface'], python: fake.python, env: podEnv, constraintsDir: dir, onOutput: (l) => lines.push(l) });
    const call = (await fake.pipCalls()).find((c) => c.requirements.includes('insightface'));
    expect(call?.requirements).toEqual(['onnxruntime-gpu==1.20.1', 'insightface']);
    expect(call?.constraints).toContain('torch==2.5.1+cu124');
    expect(lines.some((l) => l.startsWith('constraints: '))).toBe(true);
  });

  it('fails with pip\'s reason when a package would downgrade numpy', async () => {
    await expect(installPythonPackages({ packages: ['numpy<1.20'], python: fake.python, env: podEnv })).rejects.toThrow(/ResolutionImpossible/);
  });

  it('tells the user to check COMFYUI_PYTHON when that Python cannot run', async () => {
    const err = await installPythonPackages({ packages: ['x'], python: path.join(dir, 'no-such-python'), env: podEnv }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/COMFYUI_PYTHON/);
  });
});
