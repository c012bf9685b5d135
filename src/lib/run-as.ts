import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

/** How third-party code (ComfyUI, git, pip, install.py) is isolated from Phoenix, as /status reports it. */
export interface IsolationStatus {
  user: string | null;
  mode: 'uid' | 'none';
  reason: string;
}

/** Runs commands as the user third-party code runs as. */
export interface RunAs {
  readonly status: IsolationStatus;
  /** That user's uid and primary group, when it is another user than Phoenix's. */
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** The command line that runs `file args` as that user; the child is killed when its parent dies. */
  command(file: string, args: readonly string[], env: Readonly<Record<string, string>>): Promise<{ file: string; args: string[] }>;
  /** The environment for such a command: `env` with that user's HOME, USER and LOGNAME. */
  env(env: Readonly<Record<string, string>>): Record<string, string>;
}

/** Commands run as Phoenix's own user; `reason` says why. */
export function sameUser(reason: string): RunAs {
  return {
    status: { user: null, mode: 'none', reason },
    uid: undefined,
    gid: undefined,
    command: async (file, args) => ({ file, args: [...args] }),
    env: (env) => ({ ...env }),
  };
}

interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/**
 * How to run commands as `user`, decided once at start:
 * - Phoenix is root (tests, or a container run without the image's entrypoint): util-linux's
 *   `setpriv` drops to the user (uid, primary group, its groups) for each command.
 * - Phoenix is another user (the image's `sduser`): `sudo -n -E -u USER` reaches the same setpriv,
 *   allowed by one sudoers rule that lets Phoenix's user run commands as that user and nothing else.
 * Either way `setpriv --pdeathsig KILL` makes the command die with its parent, so stopping the
 * parent (which Phoenix may signal) always stops it. Without a usable user, commands run as
 * Phoenix's own user and the status says why.
 */
export async function detectRunAs(user: string | undefined, env: Readonly<Record<string, string>>): Promise<RunAs> {
  if (!user) return sameUser('COMFYUI_USER is not set');
  const account = await lookUp(user, env);
  if (!account) return sameUser(`there is no user "${user}" on this machine (COMFYUI_USER)`);
  if (account.uid === 0) return sameUser(`COMFYUI_USER "${user}" is root; name an unprivileged user`);
  const me = process.getuid?.() ?? -1;
  if (account.uid === me) return sameUser(`COMFYUI_USER "${user}" is Phoenix's own user`);
  const drop = ['--pdeathsig', 'KILL', '--'];
  const prefix =
    me === 0
      ? { file: 'setpriv', args: ['--reuid', String(account.uid), '--regid', String(account.gid), '--init-groups', ...drop] }
      : { file: 'sudo', args: ['-n', '-E', '-u', account.name, '--', 'setpriv', ...drop] };
  const probe = await execa(prefix.file, [...prefix.args, 'true'], { env: { ...env }, extendEnv: false, reject: false, stdin: 'ignore', timeout: 15_000 });
  if (probe.exitCode !== 0) {
    const why = String(probe.stderr || probe.shortMessage).trim().split('\n').pop();
    return sameUser(
      me === 0
        ? `setpriv cannot run commands as "${user}" (${why}); install util-linux`
        : `sudo does not let this user run commands as "${user}" (${why}); the image's sudoers rule allows it`,
    );
  }
  return {
    status: { user: account.name, mode: 'uid', reason: `ComfyUI, git, pip, install.py and custom nodes run as "${account.name}" (uid ${account.uid}) through ${me === 0 ? 'setpriv' : 'sudo and setpriv'}` },
    uid: account.uid,
    gid: account.gid,
    command: async (file, args, childEnv) => ({ file: prefix.file, args: [...prefix.args, await resolveCommand(file, childEnv), ...args] }),
    env: (childEnv) => ({ ...childEnv, HOME: account.home, USER: account.name, LOGNAME: account.name }),
  };
}

/** The passwd entry of a user, through NSS (`getent`), or undefined when there is none. */
async function lookUp(user: string, env: Readonly<Record<string, string>>): Promise<Account | undefined> {
  const r = await execa('getent', ['passwd', user], { env: { ...env }, extendEnv: false, reject: false, stdin: 'ignore' });
  const fields = r.exitCode === 0 ? String(r.stdout).trim().split('\n')[0]!.split(':') : [];
  if (fields.length < 7) return undefined;
  return { name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]! };
}

/** A command name as an absolute path from the child's PATH, so no other PATH (sudo's secure_path) decides what runs. */
async function resolveCommand(file: string, env: Readonly<Record<string, string>>): Promise<string> {
  if (file.includes('/')) return path.resolve(file);
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, file);
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return file;
}
