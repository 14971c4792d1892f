// One logger for the whole process (pino, JSON lines on stderr). Anything that
// could hold a secret is redacted by path as a second line of defence; the
// first is never putting tokens, secret keys or session tokens in a record.
import { pino, type DestinationStream, type Logger } from 'pino';
import { isoTime } from './iso-time.js';

export type { Logger };

const REDACT = [
  'token',
  '*.token',
  'secretAccessKey',
  '*.secretAccessKey',
  'sessionToken',
  '*.sessionToken',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'credentials',
  '*.credentials',
];

export interface LoggerOptions {
  level?: string;
  name?: string;
  /**
   * Gather lines and write them 64 KiB at a time, or every 100 ms: for a server
   * writing a record per request (the EKS Auth audit), one write per ~120 lines
   * instead of one each. pino still writes what is pending when the process exits.
   */
  batched?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'pod-identity',
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: () => `,"time":"${isoTime(Date.now())}"`,
    },
    options.batched ? batchedStderr() : pino.destination({ fd: 2, sync: false }),
  );
}

/** Bytes gathered before a write (the periodic flush writes what is there sooner). */
const BATCH_BYTES = 64 * 1024;

/**
 * stderr, written 64 KiB at a time or every 100 ms. Each write is handed to
 * libuv's thread pool and wakes whoever reads stderr; with 4 KiB batches those
 * hand-offs cost 20–30 µs of CPU per EKS Auth request at 3,000 requests/s
 * (bench/analysis/assume-role.md). sonic-boom gathers the lines as Buffers:
 * given strings, it measures the byte length of everything gathered so far on
 * every line (a copy and a scan of up to 16 KiB per line, ~10 % of the
 * instructions of an EKS Auth request in callgrind); given Buffers, it adds up
 * their lengths. What is gathered is still written when the process exits
 * (pino's exit hook on the destination). A write may carry up to two batches
 * (sonic-boom wants its maxWrite above minLength).
 */
function batchedStderr(): DestinationStream & { flush(cb?: (error?: Error) => void): void; flushSync(): void } {
  const stream = pino.destination({ fd: 2, sync: false, minLength: BATCH_BYTES, maxWrite: 2 * BATCH_BYTES, periodicFlush: 100, contentMode: 'buffer' });
  return {
    // (sonic-boom's types know only strings; in buffer mode it takes Buffers)
    write: (line: string) => stream.write(Buffer.from(line) as unknown as string),
    flush: (cb) => stream.flush(cb),
    flushSync: () => stream.flushSync(),
  };
}

/** A logger that drops everything; for library use and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
