// Overload shedding for EKS Auth. Past its capacity a process that takes
// every request queues them all, and every answer becomes late: nodes' agents
// give up after their deadline and retry, adding load. So each API process
// bounds what it takes on: at most `maxInFlight` AssumeRoleForPodIdentity
// requests at once, and none while requests wait longer than `maxQueueMs` to
// be read (the event loop's delay, which is how long a request that has
// arrived waits before this process even sees it). The delay must last: one
// late turn (a GC pause, the process descheduled on a busy node) sheds
// nothing; under overload every turn is late. A refused request costs a
// few microseconds: a pre-encoded 429 ThrottlingException with Retry-After,
// written before its body is read; the agent backs off on it.
import type { ServerResponse } from 'node:http';

export interface AdmissionLimits {
  /** AssumeRoleForPodIdentity requests in progress at most, per API process */
  maxInFlight: number;
  /** event-loop delay (ms), sustained over two samples, past which new requests are refused */
  maxQueueMs: number;
}

export type AdmissionDecision = { admit: true } | { admit: false; reason: 'in-flight' | 'queue' };

/** Whether to take a request on, given what is in progress and how late the event loop has been running (the lesser of its last two delays). Pure. */
export function decideAdmission(inFlight: number, loopDelayMs: number, limits: AdmissionLimits): AdmissionDecision {
  if (inFlight >= limits.maxInFlight) return { admit: false, reason: 'in-flight' };
  if (loopDelayMs > limits.maxQueueMs) return { admit: false, reason: 'queue' };
  return { admit: true };
}

/** Seconds a refused caller is told to wait: one second, the smallest Retry-After, is longer than any queue we allow. */
export const RETRY_AFTER_SECONDS = 1;

const SHED_BODY = JSON.stringify({ __type: 'ThrottlingException', message: 'EKS Auth is at capacity; retry after the Retry-After delay.' });
const SHED_HEADERS = {
  'content-type': 'application/json',
  'content-length': String(Buffer.byteLength(SHED_BODY)),
  'x-amzn-errortype': 'ThrottlingException',
  'retry-after': String(RETRY_AFTER_SECONDS),
};

/** How often the event loop's delay is sampled: the delay is known within this much. */
const SAMPLE_MS = 5;

/**
 * The edge around decideAdmission: counts requests in progress and samples
 * the event loop's delay with one unref'd timer (how much later than asked a
 * 5 ms timer fires). `shed` is called for each refused request.
 */
export class AdmissionControl {
  private inFlight = 0;
  /** the delays of the last two samples */
  private previousDelayMs = 0;
  private lastDelayMs = 0;
  /** when the sampling timer should fire next */
  private expected = performance.now() + SAMPLE_MS;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly shed: (reason: 'in-flight' | 'queue') => void = () => {},
  ) {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.previousDelayMs = this.lastDelayMs;
      this.lastDelayMs = Math.max(0, now - this.expected);
      this.expected = now + SAMPLE_MS;
    }, SAMPLE_MS);
    this.timer.unref();
  }

  /**
   * Takes the request on (true; its slot is freed when the response closes)
   * or answers it 429 ThrottlingException with Retry-After (false).
   */
  admit(res: ServerResponse, requestId: string): boolean {
    // Sustained: late in the previous sample and still late now (the last
    // sample, or the next one already overdue).
    const delay = Math.min(this.previousDelayMs, Math.max(this.lastDelayMs, performance.now() - this.expected));
    const decision = decideAdmission(this.inFlight, delay, this.limits);
    if (!decision.admit) {
      this.shed(decision.reason);
      res.writeHead(429, { ...SHED_HEADERS, 'x-amzn-requestid': requestId });
      res.end(SHED_BODY);
      return false;
    }
    this.inFlight++;
    res.once('close', () => this.inFlight--);
    return true;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
