import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/index.js';
import { UserError } from '../../src/lib/errors.js';
import { buildTemplate, deployTemplate, runTemplate } from '../../src/commands/template.js';
import { sendJson, startFixtureServer, type FixtureServer } from '../fixtures/http-server.js';
import { testConfig } from '../helpers.js';

const GOOD_KEY = 'rpa_GOODKEY0123456789';
const SECRETS = { RUNPOD_API_KEY: GOOD_KEY, CIVITAI_TOKEN: 'civitai-secret-token', HF_TOKEN: 'hf_secret_token_123', PHOENIX_PASSWORD: 'board-password-1', FB_PASSWORD: 'filebrowser-password-1' };

interface SaveCall {
  authorization: string | undefined;
  body: { query: string; variables: { input: { name: string } } };
}

/**
 * Imitates RunPod's GraphQL endpoint: 401 for a wrong Bearer key (as RunPod answers an invalid
 * key), GraphQL errors for a duplicate name, and a new id otherwise.
 */
async function startFakeRunPod(): Promise<FixtureServer & { calls: SaveCall[] }> {
  const calls: SaveCall[] = [];
  const names = new Set<string>();
  const server = await startFixtureServer(async (req, res, url) => {
    if (req.method !== 'POST' || url.pathname !== '/graphql') return sendJson(res, 404, { error: 'not found' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as SaveCall['body'];
    calls.push({ authorization: req.headers.authorization, body });
    if (req.headers.authorization !== `Bearer ${GOOD_KEY}`) return sendJson(res, 401, { error: 'Unauthorized' });
    if (!/saveTemplate\(input: \$input\)/.test(body.query)) return sendJson(res, 400, { errors: [{ message: 'bad query' }] });
    const { name } = body.variables.input;
    // Some GraphQL servers echo the request in their error; the key must not come back through it.
    if (name === 'echo-the-key') return sendJson(res, 200, { errors: [{ message: `bad input near ${req.headers.authorization}` }] });
    if (names.has(name)) return sendJson(res, 200, { data: { saveTemplate: null }, errors: [{ message: 'Template name must be unique' }] });
    names.add(name);
    return sendJson(res, 200, { data: { saveTemplate: { id: `tpl${names.size}`, name, imageName: 'x' } } });
  });
  return Object.assign(server, { calls });
}

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

describe('RunPod template', () => {
  let runpod: Awaited<ReturnType<typeof startFakeRunPod>>;
  beforeAll(async () => {
    runpod = await startFakeRunPod();
  });
  afterAll(() => runpod.close());

  it('describes the image: ports, volume at /workspace, documented defaults and no secret values', () => {
    const t = buildTemplate();
    expect(t).toMatchObject({
      imageName: 'ghcr.io/phoenix-pod/phoenix:latest',
      containerDiskInGb: 150,
      volumeMountPath: '/workspace',
      ports: '8188/http,8189/http,8080/http',
      isServerless: false,
    });
    const env = Object.fromEntries(t.env.map((e) => [e.key, e.value]));
    expect(env).toMatchObject({ PHOENIX_USERNAME: 'admin', FB_USERNAME: 'admin', COMFYUI_WAIT_FOR: 'all', DOWNLOAD_CONCURRENCY: '3', FILEBROWSER_PORT: '8080' });
    for (const secret of ['PHOENIX_PASSWORD', 'PHOENIX_API_TOKEN', 'FB_PASSWORD', 'CIVITAI_TOKEN', 'HF_TOKEN']) expect(env[secret]).toBe('');
    expect(t.readme).toContain('CIVITAI_MODELS');
    // The login covers ComfyUI too, and the template says what it takes.
    expect(env.COMFYUI_AUTH).toBe('on');
    expect(t.readme).toMatch(/\| PHOENIX_PASSWORD \| its password \(≥ 12 characters\)/);
    expect(t.readme).toContain('ComfyUI and the board ask for one login');
    expect(t.readme).toMatch(/\| PHOENIX_API_TOKEN \| token for scripts .*\| \(secret\) \|/);
    // Privacy and the fleet are set on the deploy page too; their secrets carry no value either.
    expect(env).toMatchObject({ PRIVACY_ENABLED: 'false', PHOENIX_FLEET: 'false', AWS_REGION: 'us-east-1', MODEL_MIRROR: '' });
    for (const secret of ['REDIS_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      expect(env[secret]).toBe('');
      expect(t.readme).toMatch(new RegExp(`\\| ${secret} \\| .* \\| \\(secret\\) \\|`));
    }
    expect(buildTemplate({ imageName: 'ghcr.io/me/phoenix:1.2.3' }).imageName).toBe('ghcr.io/me/phoenix:1.2.3');
  });

  it('deploys as a valid configuration: the values it carries start a pod that stands alone, privacy off', async () => {
    const env = Object.fromEntries(buildTemplate().env.map((e) => [e.key, e.value]));
    const config = await testConfig({ ...env, WORKSPACE: '/workspace' });
    expect(config.fleet).toMatchObject({ shared: false, board: false });
    expect(config.privacy.enabled).toBe(false);
    expect(config.comfyui.port).toBe(8188);
  });

  it('deploys with a Bearer key and returns the new template id', async () => {
    const id = await deployTemplate(buildTemplate({ name: 'deploy-ok' }), { apiKey: GOOD_KEY, baseUrl: runpod.url });
    expect(id).toBe('tpl1');
    const call = runpod.calls.at(-1)!;
    expect(call.authorization).toBe(`Bearer ${GOOD_KEY}`);
    expect(call.body.variables.input.name).toBe('deploy-ok');
  });

  it('says the API key was refused on 401', async () => {
    const attempt = deployTemplate(buildTemplate({ name: 'deploy-401' }), { apiKey: 'rpa_WRONG', baseUrl: runpod.url });
    await expect(attempt).rejects.toBeInstanceOf(UserError);
    await expect(attempt).rejects.toThrow(/HTTP 401.*RUNPOD_API_KEY/);
  });

  it("reports RunPod's own error message", async () => {
    const template = buildTemplate({ name: 'deploy-twice' });
    await deployTemplate(template, { apiKey: GOOD_KEY, baseUrl: runpod.url });
    await expect(deployTemplate(template, { apiKey: GOOD_KEY, baseUrl: runpod.url })).rejects.toThrow(
      'RunPod refused the template "deploy-twice": Template name must be unique',
    );
  });

  it('never repeats the API key when RunPod echoes it in an error', async () => {
    const err = await deployTemplate(buildTemplate({ name: 'echo-the-key' }), { apiKey: GOOD_KEY, baseUrl: runpod.url }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('bad input near Bearer [redacted]');
    expect((err as Error).message).not.toContain(GOOD_KEY);
  });

  it('runs as a command reading the key and base URL from the config, never printing the key', async () => {
    const config = await testConfig({ ...SECRETS, RUNPOD_API_BASE_URL: `${runpod.url}/`, FILEBROWSER_PORT: '9090' });
    expect(config.secrets).toContain(GOOD_KEY);
    const out = capture();
    const err = capture();
    expect(await runTemplate(config, { deploy: true, name: 'from-cli', out: out.stream, err: err.stream })).toBe(0);
    expect(out.text()).toMatch(/saved RunPod template "from-cli".*id tpl\d+/);
    const printed = JSON.parse(out.text().slice(0, out.text().lastIndexOf('}') + 1)) as { ports: string };
    expect(printed.ports).toBe('8188/http,8189/http,9090/http');
    expect(await runTemplate(config, { deploy: true, name: 'from-cli', out: out.stream, err: err.stream })).toBe(1);
    expect(err.text()).toContain('must be unique');
    const everything = out.text() + err.text() + JSON.stringify(runpod.calls.map((c) => c.body));
    for (const secret of Object.values(SECRETS)) expect(everything).not.toContain(secret);
  });

  it('asks for RUNPOD_API_KEY before deploying without one', async () => {
    const config = await testConfig({ RUNPOD_API_BASE_URL: runpod.url });
    const before = runpod.calls.length;
    await expect(runTemplate(config, { deploy: true, out: capture().stream })).rejects.toBeInstanceOf(ConfigError);
    expect(runpod.calls.length).toBe(before);
  });
});
