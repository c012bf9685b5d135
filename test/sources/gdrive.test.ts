import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/lib/errors.js';
import { createManifestFetcher } from '../../src/config/manifest.js';
import { driveFileId, fetchGoogleDriveText } from '../../src/lib/gdrive.js';
import { resolveModel } from '../../src/sources/index.js';
import { PERMISSION_MESSAGE, QUOTA_MESSAGE, startGdriveFixture, type GdriveFixture } from '../fixtures/gdrive-server.js';
import { fakeSafetensors, sha256Hex } from '../fixtures/http-server.js';
import { fetchResolved, sourceContext, configInTempWorkspace } from '../fixtures/source-context.js';
import { failure } from '../helpers.js';

const small = fakeSafetensors('small', 900);
const big = fakeSafetensors('big', 20_000);
const manifest = `
[models.loras.detail]
source = "civitai"
version_id = "58390"
`;

let drive: GdriveFixture;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  drive = await startGdriveFixture({
    files: [
      { id: '1smallFileId_abc', name: 'tiny lora.safetensors', content: small },
      { id: '1bigFileId-xyz', name: 'big model.safetensors', content: big, large: true },
      { id: '1quotaFileId', name: 'popular.safetensors', content: small, error: 'quota' },
      { id: '1privateFileId', name: 'private.safetensors', content: small, error: 'permission' },
      { id: '1manifestId', name: 'provision.toml', content: Buffer.from(manifest), large: true },
    ],
  });
});

afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await drive?.close();
});

function driveEnv(): Record<string, string> {
  return { GDRIVE_BASE_URL: drive.url, GDRIVE_USERCONTENT_URL: drive.usercontentUrl };
}

async function context() {
  const { config, cleanup } = await configInTempWorkspace(driveEnv());
  cleanups.push(cleanup);
  return sourceContext(config);
}

describe('Google Drive links', () => {
  it('finds the file id in every share-link shape', () => {
    expect(driveFileId('https://drive.google.com/file/d/1AbC-d_9/view?usp=sharing')).toBe('1AbC-d_9');
    expect(driveFileId('https://drive.google.com/open?id=1AbC-d_9')).toBe('1AbC-d_9');
    expect(driveFileId('https://drive.google.com/uc?id=1AbC-d_9&export=download')).toBe('1AbC-d_9');
    expect(driveFileId('https://drive.usercontent.google.com/download?id=1AbC-d_9&export=download')).toBe('1AbC-d_9');
    expect(() => driveFileId('https://drive.google.com/drive/folders/1AbC')).toThrow(/folder/);
    expect(() => driveFileId('https://drive.google.com/file/view')).toThrow(UserError);
  });
});

describe('Google Drive source', () => {
  it('resolves a small file answered directly, with its name and size', async () => {
    const [file] = await resolveModel({ source: 'gdrive', url: drive.shareLink('1smallFileId_abc') }, await context());
    expect(file).toMatchObject({ name: 'tiny lora.safetensors', bytes: small.length });
    expect(file!.sha256).toBeUndefined();
    expect(new URL(file!.request.url).origin).toBe(drive.usercontentUrl);
    expect(await fetchResolved(file!.request)).toEqual({ status: 200, bytes: small.length, sha256: sha256Hex(small) });
  });

  it('returns the confirmed URL of a large file without spending its one-time uuid', async () => {
    const seen = drive.usercontentRequests.length;
    const [file] = await resolveModel({ source: 'gdrive', url: drive.shareLink('1bigFileId-xyz') }, await context());
    expect(file!.name).toBe('big model.safetensors');
    expect(file!.bytes).toBeUndefined();
    const confirmed = new URL(file!.request.url);
    expect(confirmed.origin).toBe(drive.usercontentUrl);
    expect(confirmed.pathname).toBe('/download');
    expect(confirmed.searchParams.get('id')).toBe('1bigFileId-xyz');
    expect(confirmed.searchParams.get('confirm')).toBe('t');
    expect(confirmed.searchParams.get('uuid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(drive.usercontentRequests.slice(seen).some((r) => r.path.includes('uuid='))).toBe(false);

    expect(await fetchResolved(file!.request)).toEqual({ status: 200, bytes: big.length, sha256: sha256Hex(big) });
  });

  it('keeps a manifest rename and sha256', async () => {
    const sha = sha256Hex(small);
    const [file] = await resolveModel(
      { source: 'gdrive', url: drive.shareLink('1smallFileId_abc'), filename: 'renamed.safetensors', sha256: sha },
      await context(),
    );
    expect(file).toMatchObject({ name: 'renamed.safetensors', sha256: sha });
  });

  it('passes on the text of an error page', async () => {
    const ctx = await context();
    const quota = await failure(resolveModel({ source: 'gdrive', url: drive.shareLink('1quotaFileId') }, ctx));
    expect(quota).toBeInstanceOf(UserError);
    expect(quota.message).toBe(`Google Drive file 1quotaFileId: ${QUOTA_MESSAGE}`);
    const denied = await failure(resolveModel({ source: 'gdrive', url: drive.shareLink('1privateFileId') }, ctx));
    expect(denied.message).toBe(`Google Drive file 1privateFileId: ${PERMISSION_MESSAGE}`);
  });

  it('says when a file does not exist or is not shared', async () => {
    const err = await failure(resolveModel({ source: 'gdrive', url: drive.shareLink('1unknownId') }, await context()));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/has no file 1unknownId, or it is not shared/);
  });
});

describe('manifests on Google Drive', () => {
  it('reads a text file through the confirm page', async () => {
    const endpoints = { gdrive: drive.url, gdriveUsercontent: drive.usercontentUrl };
    expect(await fetchGoogleDriveText(drive.shareLink('1manifestId'), endpoints)).toBe(manifest);
  });

  it('loads PROVISION_URL from a share link through createManifestFetcher', async () => {
    const env = { ...driveEnv(), PROVISION_URL: drive.shareLink('1manifestId') };
    const { config, cleanup } = await configInTempWorkspace(env, { fetchText: createManifestFetcher({ gdrive: drive.url, gdriveUsercontent: drive.usercontentUrl }) });
    cleanups.push(cleanup);
    expect(config.models).toEqual([
      { origin: 'manifest models.loras.detail', spec: { source: 'civitai', versionId: '58390', category: 'loras' } },
    ]);
  });
});
