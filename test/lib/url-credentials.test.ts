import { describe, expect, it } from 'vitest';
import { hasUrlCredentials, isSecretParam, redactUrl, splitUserInfo, urlSecrets } from '../../src/lib/url-credentials.js';

describe('credentials inside URLs', () => {
  it('shows user-info and secret query values as ***, keeping the rest', () => {
    expect(redactUrl('https://user:s3cret@github.com/o/r.git')).toBe('https://***@github.com/o/r.git');
    expect(redactUrl('https://cdn.example/m.safetensors?token=abc&x=1&X-Amz-Signature=zz&sig=q#f')).toBe(
      'https://cdn.example/m.safetensors?token=***&x=1&X-Amz-Signature=***&sig=***#f',
    );
    expect(redactUrl('https://cdn.example/m.safetensors?x=1')).toBe('https://cdn.example/m.safetensors?x=1');
    expect(redactUrl('not a url')).toBe('not a url');
  });

  it('names the secret parameters it knows, by name and by part of a name', () => {
    for (const name of ['token', 'api_key', 'apikey', 'key', 'access_token', 'X-Amz-Credential', 'X-Goog-Signature', 'sig', 'Key-Pair-Id', 'hf_token'])
      expect(isSecretParam(name)).toBe(true);
    for (const name of ['id', 'export', 'confirm', 'download', 'modelVersionId']) expect(isSecretParam(name)).toBe(false);
  });

  it('tells a URL with credentials (or their stand-ins) from one without', () => {
    expect(hasUrlCredentials('https://tok@github.com/o/r')).toBe(true);
    expect(hasUrlCredentials('https://***@github.com/o/r')).toBe(true);
    expect(hasUrlCredentials('https://h/m?token=***')).toBe(true);
    expect(hasUrlCredentials('https://h/m?id=1')).toBe(false);
  });

  it('lists the values to redact, as written and decoded; a user name beside a password is not one', () => {
    expect(urlSecrets('https://user:p%40ss@h/r?key=k1')).toEqual(['p%40ss', 'k1', 'p@ss']);
    expect(urlSecrets('https://ghp_token@github.com/o/r')).toEqual(['ghp_token']);
  });

  it('splits user-info off a URL', () => {
    expect(splitUserInfo('https://u:p%40ss@h/r.git?x=1')).toEqual({ url: 'https://h/r.git?x=1', username: 'u', password: 'p@ss' });
    expect(splitUserInfo('https://h/r.git')).toBeUndefined();
  });
});
