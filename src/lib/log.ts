import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

const REDACTED = '[redacted]';

/**
 * Replaces every occurrence of a secret value, wherever it appears (messages, URLs, error
 * stacks, job logs). Redacting by value catches what path-based redaction misses.
 */
export class Redactor {
  private readonly secrets: string[];

  constructor(secrets: readonly string[]) {
    // Each secret also as it appears inside a URL; longest first, so a secret containing
    // another is replaced whole.
    const plain = secrets.filter((s) => s.length >= 4);
    this.secrets = [...new Set([...plain, ...plain.map(encodeURIComponent)])].sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    return out;
  }
}

export interface LoggerOptions {
  secrets: readonly string[];
  debug: boolean;
  /** Where JSON lines go; defaults to stdout (pretty when stdout is a terminal). */
  destination?: NodeJS.WritableStream;
}

/** The one pino instance of a process. Job code uses `logger.child({ job: id })`. */
export function createLogger(options: LoggerOptions): Logger {
  const redactor = new Redactor(options.secrets);
  const pretty = !options.destination && process.stdout.isTTY;
  const stream = pretty
    ? pino.transport({ target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname' } })
    : options.destination ?? process.stdout;
  return pino(
    {
      name: 'phoenix',
      level: options.debug ? 'debug' : 'info',
      base: { pid: process.pid },
      hooks: {
        streamWrite: (line) => redactor.redact(line),
      },
    },
    stream as pino.DestinationStream,
  );
}
