import { splitUserInfo } from '../lib/url-credentials.js';

/** A git remote as git is given it: the URL it stores, and the variables of the one command that needs credentials. */
export interface GitRemote {
  /** The URL without user-info: what `.git/config` keeps. */
  url: string;
  /** Variables that hand the credentials to this one git command; empty without user-info. */
  env: Record<string, string>;
}

/**
 * The user-info of `https://user:token@host/repo.git` reaches git without being written anywhere:
 * git gets the URL without it, and, through its environment, a credential helper that answers for
 * that origin only. The helper list is cleared first, so no helper of the user's own (`store`)
 * keeps a copy. The values sit in that command's environment while it runs.
 */
export function gitRemote(url: string): GitRemote {
  const split = splitUserInfo(url);
  if (!split) return { url, env: {} };
  return {
    url: split.url,
    env: {
      GIT_CONFIG_COUNT: '2',
      GIT_CONFIG_KEY_0: 'credential.helper',
      GIT_CONFIG_VALUE_0: '',
      GIT_CONFIG_KEY_1: `credential.${new URL(split.url).origin}.helper`,
      GIT_CONFIG_VALUE_1: '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$PHOENIX_GIT_USERNAME" "$PHOENIX_GIT_PASSWORD"; }; f',
      PHOENIX_GIT_USERNAME: split.username,
      PHOENIX_GIT_PASSWORD: split.password,
    },
  };
}
