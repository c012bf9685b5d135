/**
 * Debian's nginx serving one directory on a random 127.0.0.1 port, as the current user, with
 * sendfile: a loopback server cheap enough that it is not what the clients wait for. Returns
 * undefined when nginx is not installed (`apt-get install -y nginx-light`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Nginx {
  url(file: string): string;
  close(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'];

export async function startNginx(root: string, workDir: string): Promise<Nginx | undefined> {
  const binary = CANDIDATES.find((candidate) => existsSync(candidate));
  if (!binary) return undefined;
  const port = await freePort();
  await mkdir(path.join(workDir, 'tmp'), { recursive: true });
  const user = os.userInfo();
  const config = [
    // `user` only matters when started as root: stay root rather than drop to nobody.
    ...(user.uid === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    'daemon off;',
    `pid ${path.join(workDir, 'nginx.pid')};`,
    `error_log ${path.join(workDir, 'error.log')};`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  keepalive_requests 100000;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${path.join(workDir, 'tmp')};`),
    '  default_type application/octet-stream;',
    `  server { listen 127.0.0.1:${port}; root ${root}; }`,
    '}',
  ].join('\n');
  const configPath = path.join(workDir, 'nginx.conf');
  await writeFile(configPath, `${config}\n`);
  const child: ChildProcess = spawn(binary, ['-e', path.join(workDir, 'error.log'), '-p', workDir, '-c', configPath], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
    await exited;
  };
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null) return undefined;
    if (await answers(`http://127.0.0.1:${port}/`)) {
      return { url: (file) => `http://127.0.0.1:${port}/${file}`, close: stop };
    }
    await sleep(100);
  }
  await stop();
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
  });
}
