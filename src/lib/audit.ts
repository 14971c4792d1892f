// The audit trail: one JSON record per decision or change, to the log and,
// when configured (`audit.file`), to a JSONL file. Each producer defines its
// records (auth/service.ts: every EKS Auth decision; associations/service.ts:
// every association change) from named, non-secret fields only: a record
// never holds a token, a secret key or a session token. The schema is in
// docs/operations.md (Audit records). Listeners in the same process (the
// console's live feed, a worker forwarding decisions to the primary) subscribe.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from './logger.js';

/** What every record has: its type and its time (ISO 8601). */
export interface AuditEntry {
  type: string;
  time: string;
}

/** The JSONL writer stops buffering past this many bytes (a stuck disk must not eat the heap). */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

export class AuditLog {
  private readonly file: WriteStream | undefined;
  private dropped = 0;
  private readonly listeners = new Set<(record: AuditEntry) => void>();

  private readonly logger: Logger;

  constructor(logger: Logger, filePath?: string) {
    // Records are built from named, non-secret fields only, so the logger's
    // path redaction (half the cost of a record) is not needed.
    this.logger = logger.child({}, { redact: [] });
    if (filePath) {
      this.file = createWriteStream(filePath, { flags: 'a', mode: 0o600 });
      this.file.on('error', (error) => logger.error({ err: error.message, file: filePath }, 'audit file write failed'));
    }
  }

  /** Logs the record under `audit` with this message, and appends it to the file. */
  record<T extends AuditEntry>(record: T, message: string): void {
    this.logger.info({ audit: record }, message);
    for (const listener of this.listeners) listener(record);
    if (!this.file) return;
    if (this.file.writableLength > MAX_PENDING_BYTES) {
      if (this.dropped++ % 1000 === 0) this.logger.error({ dropped: this.dropped }, 'audit file is not keeping up; records dropped from the file (still in the log)');
      return;
    }
    this.file.write(`${JSON.stringify(record)}\n`);
  }

  /** Calls `listener` with every record from now on (synchronously: it must not block); returns the unsubscribe. */
  subscribe(listener: (record: AuditEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    return new Promise((resolve) => file.end(resolve));
  }
}
