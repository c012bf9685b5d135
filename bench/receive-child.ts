/**
 * The floor under Phoenix's loopback figure: the same Connector and segment plan as downloadFile,
 * over the same number of connections, but every received byte is dropped: nothing is written and
 * nothing hashed. Prints {seconds, bytes} as JSON.
 */
import { Connector } from '../src/download/connector.js';

const [url, sizeText, connectionsText] = process.argv.slice(2);
const size = Number(sizeText);
const connections = Number(connectionsText);
const segment = 2 * 1024 * 1024;
const pieces: [number, number][] = [];
for (let start = 0; start < size; start += segment) pieces.push([start, Math.min(size, start + segment)]);

const connector = new Connector({ url: url!, headers: {} }, connections);
const signal = new AbortController().signal;
let bytes = 0;
const started = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: connections }, async () => {
    for (let piece = pieces.shift(); piece; piece = pieces.shift()) {
      const { status, body } = await connector.open({ range: `bytes=${piece[0]}-${piece[1] - 1}` }, signal);
      if (status !== 206) throw new Error(`expected 206, got ${status}`);
      await body.consume((chunk) => {
        bytes += chunk.length;
      });
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
connector.close();
if (bytes !== size) throw new Error(`received ${bytes} bytes, expected ${size}`);
process.stdout.write(`${JSON.stringify({ seconds, bytes })}\n`);
