import proxyaddr from 'proxy-addr';

/** Where ComfyUI itself listens, and the variable a user changes to move it. */
export interface ComfyListen {
  /** An address, or null for every interface (a bare `--listen`). */
  host: string | null;
  port: number;
  variable: 'COMFYUI_PORT' | 'COMFYUI_INTERNAL_PORT';
}

interface AccessInput {
  COMFYUI_AUTH: 'on' | 'off';
  COMFYUI_PORT: number;
  COMFYUI_INTERNAL_PORT?: number | undefined;
  PHOENIX_PORT: number;
  FILEBROWSER_PORT: number;
  PHOENIX_TRUSTED_PROXIES: string[];
}

/** How far the internal port sits from COMFYUI_PORT when COMFYUI_INTERNAL_PORT is unset (8188 → 18188). */
const INTERNAL_PORT_OFFSET = 10_000;

/**
 * With COMFYUI_AUTH=on ComfyUI listens on 127.0.0.1 only, on COMFYUI_INTERNAL_PORT (default
 * COMFYUI_PORT + 10000, or − 10000 where that would pass 65535), and Phoenix's login proxy owns
 * COMFYUI_PORT. With off, ComfyUI listens on COMFYUI_PORT on every interface, as it always did.
 */
export function comfyListen(e: AccessInput): ComfyListen {
  if (e.COMFYUI_AUTH === 'off') return { host: null, port: e.COMFYUI_PORT, variable: 'COMFYUI_PORT' };
  const derived = e.COMFYUI_PORT + INTERNAL_PORT_OFFSET <= 65535 ? e.COMFYUI_PORT + INTERNAL_PORT_OFFSET : e.COMFYUI_PORT - INTERNAL_PORT_OFFSET;
  return { host: '127.0.0.1', port: e.COMFYUI_INTERNAL_PORT ?? derived, variable: 'COMFYUI_INTERNAL_PORT' };
}

/**
 * Problems with the ports and the login's settings: two servers on one port, COMFY_ARGS moving
 * ComfyUI off the address Phoenix guards, a trusted proxy that is not an address.
 */
export function accessProblems(e: AccessInput, comfyArgs: readonly string[], problems: string[]): void {
  const listen = comfyListen(e);
  const ports: [string, number][] = [
    ['COMFYUI_PORT', e.COMFYUI_PORT],
    ['PHOENIX_PORT', e.PHOENIX_PORT],
    ['FILEBROWSER_PORT', e.FILEBROWSER_PORT],
  ];
  if (listen.variable === 'COMFYUI_INTERNAL_PORT') ports.push(['COMFYUI_INTERNAL_PORT', listen.port]);
  ports.forEach(([name, port], i) => {
    const clash = ports.slice(0, i).find(([, other]) => other === port);
    if (clash) problems.push(`${name}: ${port} is already ${clash[0]}; each server needs its own port`);
  });

  const flags = new Set(comfyArgs.map((a) => a.split('=')[0]!));
  if (flags.has('--port')) problems.push('COMFY_ARGS: --port is set by Phoenix; choose the port with COMFYUI_PORT');
  if (flags.has('--listen') && e.COMFYUI_AUTH === 'on') {
    problems.push(
      'COMFY_ARGS: --listen is set by Phoenix (ComfyUI listens on 127.0.0.1 behind the login); remove it, ' +
        'or set COMFYUI_AUTH=off to let ComfyUI listen on COMFYUI_PORT without a login',
    );
  }

  for (const entry of e.PHOENIX_TRUSTED_PROXIES) {
    try {
      proxyaddr.compile(entry);
    } catch {
      problems.push(`PHOENIX_TRUSTED_PROXIES: "${entry}" is not an IP address, a CIDR range, or one of loopback, linklocal, uniquelocal`);
    }
  }
}
