// One audit record per EKS Auth decision, to the log and, when configured, to
// a JSONL file. Records name who asked for what and what was decided; they
// never hold a token, a secret key or a session token.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from '../lib/logger.js';

export type AuditOutcome = 'allowed' | 'denied' | 'failed';

export interface AuditRecord {
  /** ISO 8601 */
  time: string;
  requestId: string;
  cluster: string;
  /** access key id of the calling node key */
  caller?: string;
  namespace?: string;
  serviceAccount?: string;
  podName?: string;
  podUid?: string;
  /** the node: the request's eksNodeName, else the token's node claim */
  node?: string;
  associationId?: string;
  roleArn?: string;
  outcome: AuditOutcome;
  /** the wire error name when not allowed */
  errorType?: string;
  latencyMs: number;
}

/** The JSONL writer stops buffering past this many bytes (a stuck disk must not eat the heap). */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

export class AuditLog {
  private readonly file: WriteStream | undefined;
  private dropped = 0;

  private readonly logger: Logger;

  constructor(logger: Logger, filePath?: string) {
    // Records are built here from named, non-secret fields only, so the
    // logger's path redaction (half the cost of a record) is not needed.
    this.logger = logger.child({}, { redact: [] });
    if (filePath) {
      this.file = createWriteStream(filePath, { flags: 'a', mode: 0o600 });
      this.file.on('error', (error) => logger.error({ err: error.message, file: filePath }, 'audit file write failed'));
    }
  }

  record(record: AuditRecord): void {
    this.logger.info({ audit: record }, 'eks-auth decision');
    if (!this.file) return;
    if (this.file.writableLength > MAX_PENDING_BYTES) {
      if (this.dropped++ % 1000 === 0) this.logger.error({ dropped: this.dropped }, 'audit file is not keeping up; records dropped from the file (still in the log)');
      return;
    }
    this.file.write(`${JSON.stringify(record)}\n`);
  }

  close(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    return new Promise((resolve) => file.end(resolve));
  }
}
