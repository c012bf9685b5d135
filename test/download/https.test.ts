import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, type DownloadFileOptions } from '../../src/download/engine.js';
import { type CdnFixture, startCdnFixture } from '../fixtures/cdn-server.js';

const run = promisify(execFile);
const SIZE = 3 * 1024 * 1024 + 777;
const child = fileURLToPath(new URL('./download-child.ts', import.meta.url));
let cdn: CdnFixture;
let dir: string;
let certPath: string;

/** Real model CDNs are https: the same engine over TLS, with a certificate made for this run. */
describe('https origins', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'phoenix-https-'));
    certPath = path.join(dir, 'cert.pem');
    const keyPath = path.join(dir, 'key.pem');
    await run('openssl', [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1'],
      ...['-keyout', keyPath, '-out', certPath, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    ]);
    const [key, cert] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
    cdn = await startCdnFixture({ files: { '/flux.safetensors': SIZE }, tls: { key, cert } });
  });
  afterAll(async () => {
    await cdn?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function options(name: string): DownloadFileOptions {
    return {
      request: { url: cdn.url('/flux.safetensors'), headers: {} },
      partPath: path.join(dir, '.phoenix-tmp', `${name}.part`),
      expectedBytes: SIZE,
      expectedSha256: cdn.sha256('/flux.safetensors'),
      connections: 4,
      stallTimeoutMs: 10_000,
      segmentBytes: 256 * 1024,
    };
  }

  it('downloads and verifies over parallel TLS connections when the certificate is trusted', async () => {
    cdn.requests.length = 0;
    const opts = options('trusted');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', child, JSON.stringify(opts)], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certPath },
    });
    const result = JSON.parse(stdout) as { bytes: number; sha256: string; ranged: boolean };
    expect(result).toMatchObject({ bytes: SIZE, sha256: opts.expectedSha256, ranged: true });
    expect(cdn.requests.length).toBeGreaterThan(4);
    expect(cdn.requests.every((r) => r.status === 206)).toBe(true);
  });

  it('refuses an origin whose certificate is not trusted, saying why', async () => {
    cdn.requests.length = 0;
    await expect(downloadFile({ ...options('untrusted'), segmentRetries: 1 })).rejects.toThrow(
      /flux\.safetensors failed 2 times in a row at byte 0: self-signed certificate/,
    );
    // The TLS handshake failed, so no request reached the server.
    expect(cdn.requests).toEqual([]);
  });
});
