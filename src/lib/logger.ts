// One logger for the whole process (pino, JSON lines on stderr). Anything that
// could hold a secret is redacted by path as a second line of defence; the
// first is never putting tokens, secret keys or session tokens in a record.
import { pino, type Logger } from 'pino';

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

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'pod-identity',
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything; for library use and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
