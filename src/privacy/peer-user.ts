import { readFile } from 'node:fs/promises';
import net from 'node:net';

/**
 * Which process user opened a loopback connection to the proxy. The kernel lists every TCP socket
 * of the network namespace in /proc/net/tcp{,6} with its owner's uid: the client's socket is the
 * one whose local end is the connection's remote end. No process table walk, no root needed.
 */

export interface SocketEnds {
  /** The client's end as the proxy sees it (remoteAddress/remotePort). */
  clientAddress: string;
  clientPort: number;
  /** The proxy's own end (localAddress/localPort). */
  serverAddress: string;
  serverPort: number;
}

/** The uid owning the client's socket, or undefined when the kernel does not list it (it closed). */
export async function peerUid(ends: SocketEnds): Promise<number | undefined> {
  const table = await readFile(net.isIPv6(ends.clientAddress) ? '/proc/net/tcp6' : '/proc/net/tcp', 'utf8').catch(() => '');
  const local = `${procAddress(ends.clientAddress)}:${hex(ends.clientPort, 4)}`;
  const remote = `${procAddress(ends.serverAddress)}:${hex(ends.serverPort, 4)}`;
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return Number(f[7]);
  }
  return undefined;
}

/** User names by uid from /etc/passwd, read again when a uid is new (users can be added at run time). */
export class UserNames {
  private names = new Map<number, string>();

  async name(uid: number | undefined): Promise<string> {
    if (uid === undefined) return 'unknown';
    if (!this.names.has(uid)) this.names = await readPasswd();
    return this.names.get(uid) ?? String(uid);
  }
}

async function readPasswd(): Promise<Map<number, string>> {
  const text = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid && /^\d+$/.test(uid)) out.set(Number(uid), name);
  }
  return out;
}

/** An address as /proc/net/tcp writes it: each 32-bit word in host (little-endian) byte order. */
function procAddress(address: string): string {
  if (net.isIPv4(address)) return hexWord(address.split('.').map(Number));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return `0000000000000000FFFF0000${hexWord(mapped[1]!.split('.').map(Number))}`;
  return expandIPv6(address);
}

function hexWord(bytes: readonly number[]): string {
  return [...bytes].reverse().map((b) => hex(b, 2)).join('');
}

function expandIPv6(address: string): string {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right].map((g) => Number.parseInt(g, 16));
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  let out = '';
  for (let i = 0; i < 16; i += 4) out += hexWord(bytes.slice(i, i + 4));
  return out;
}

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0');
}
