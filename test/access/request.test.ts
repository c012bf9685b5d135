import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { safeNext } from '../../src/access/login-page.js';
import { clientAddress, isCrossSite, presentedCredentials, trustedProxies, withoutCookie } from '../../src/access/request.js';

function request(headers: Record<string, string>, remoteAddress = '127.0.0.1'): IncomingMessage {
  return { headers, socket: { remoteAddress }, connection: { remoteAddress } } as unknown as IncomingMessage;
}

describe('what a request says about itself', () => {
  it('tells a request from another site by its Origin, else its Referer', () => {
    const host = { host: 'pod-8188.proxy.runpod.net' };
    expect(isCrossSite(request(host))).toBe(false);
    expect(isCrossSite(request({ ...host, origin: 'https://pod-8188.proxy.runpod.net' }))).toBe(false);
    expect(isCrossSite(request({ ...host, origin: 'https://evil.example' }))).toBe(true);
    expect(isCrossSite(request({ ...host, origin: 'https://pod-8189.proxy.runpod.net' }))).toBe(true);
    expect(isCrossSite(request({ ...host, origin: 'null' }))).toBe(true);
    expect(isCrossSite(request({ ...host, referer: 'https://pod-8188.proxy.runpod.net/x?y' }))).toBe(false);
    expect(isCrossSite(request({ ...host, referer: 'https://evil.example/pod-8188.proxy.runpod.net' }))).toBe(true);
    // A proxy that rewrites Host passes the browser's in X-Forwarded-Host.
    expect(isCrossSite(request({ host: '10.0.0.5:8188', 'x-forwarded-host': 'pod-8188.proxy.runpod.net', origin: 'https://pod-8188.proxy.runpod.net' }))).toBe(false);
    expect(isCrossSite(request({ host: '10.0.0.5:8188', origin: 'https://pod-8188.proxy.runpod.net' }), ['pod-8188.proxy.runpod.net'])).toBe(false);
    expect(isCrossSite(request({ host: '127.0.0.1:8188', origin: 'http://127.0.0.1:8189' }))).toBe(true);
  });

  it('believes X-Forwarded-For only from trusted proxies', () => {
    const loopback = trustedProxies(['loopback']);
    expect(clientAddress(request({ 'x-forwarded-for': '203.0.113.7' }), loopback)).toBe('203.0.113.7');
    // A client cannot pick its address by writing the header itself: the trusted proxy appends the real one.
    expect(clientAddress(request({ 'x-forwarded-for': '198.51.100.1, 203.0.113.7' }), loopback)).toBe('203.0.113.7');
    expect(clientAddress(request({ 'x-forwarded-for': '203.0.113.7' }, '198.51.100.9'), loopback)).toBe('198.51.100.9');
    const runpod = trustedProxies(['10.0.0.0/8']);
    expect(clientAddress(request({ 'x-forwarded-for': '203.0.113.7' }, '10.1.2.3'), runpod)).toBe('203.0.113.7');
    expect(clientAddress(request({ 'x-forwarded-for': '203.0.113.7' }), runpod)).toBe('127.0.0.1');
  });

  it('reads Basic and Bearer credentials, and any other scheme as a failed attempt', () => {
    const basic = (s: string) => request({ authorization: `Basic ${Buffer.from(s).toString('base64')}` });
    expect(presentedCredentials(basic('admin:pa:ss'))).toEqual({ kind: 'basic', username: 'admin', password: 'pa:ss' });
    expect(presentedCredentials(request({ authorization: 'Bearer abc.def' }))).toEqual({ kind: 'bearer', token: 'abc.def' });
    expect(presentedCredentials(request({ authorization: 'Digest x' }))).toEqual({ kind: 'basic', username: '', password: '' });
    expect(presentedCredentials(request({}))).toEqual({ kind: 'none' });
  });

  it('goes back only to a path on the same host after signing in', () => {
    expect(safeNext('/board/queue/download?status=failed')).toBe('/board/queue/download?status=failed');
    for (const bad of ['//evil.example/', '/\\evil.example', 'https://evil.example/', 'board', '/a b', undefined, ['/x']]) {
      expect(safeNext(bad), String(bad)).toBe('/');
    }
  });

  it('takes one cookie out of a Cookie header and keeps the others as sent', () => {
    expect(withoutCookie('a=1; phoenix_session=x.y; comfy=%7B%7D', 'phoenix_session')).toBe('a=1; comfy=%7B%7D');
    expect(withoutCookie('phoenix_session=x.y', 'phoenix_session')).toBe('');
  });
});
