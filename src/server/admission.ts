// Overload shedding for EKS Auth. Past its capacity a process that takes
// every request queues them all, and every answer becomes late: nodes' agents
// give up after their deadline and retry, adding load. So each API process
// bounds what it takes on: at most `maxInFlight` AssumeRoleForPodIdentity
// requests at once, and none while requests wait longer than `maxQueueMs` to
// be read because of its own work. The wait is the event loop's delay (how
// long a request that has arrived waits before this process even sees it),
// the least over a 100 ms window, so that a GC pause or a JIT-cold turn
// sheds nothing; and it counts only while the process used nearly all of a
// core in that window: a process kept late by its neighbours on a busy node
// (not by its own queue) gets no faster by refusing work.
// The default bound, 50 ms, sits above the loop turns of a JIT-cold process
// serving a few dozen requests at once (20 ms shed most of a fresh replica's
// first requests at 16 in flight) and far below an overloaded one's, which
// grow to seconds. A refused request costs a few microseconds: a
// pre-encoded 429 ThrottlingException with Retry-After, written before its
// body is read; the agent backs off on it.
import type { ServerResponse } from 'node:http';

export interface AdmissionLimits {
  /** AssumeRoleForPodIdentity requests in progress at most, per API process */
  maxInFlight: number;
  /** event-loop delay (ms) all through the last window, with the process busy, past which new requests are refused */
  maxQueueMs: number;
}

/** What the last complete window showed. */
export interface LoopLoad {
  /** the least event-loop delay sampled in the window, ms */
  delayMs: number;
  /** CPU time the process used over the window's wall time (1 = one core all the time) */
  busy: number;
}

export type AdmissionDecision = { admit: true } | { admit: false; reason: 'in-flight' | 'queue' };

/** The share of a core above which a late loop is this process's own queue. */
export const BUSY_THRESHOLD = 0.9;

/** Whether to take a request on, given what is in progress and how the event loop ran in the last window. Pure. */
export function decideAdmission(inFlight: number, load: LoopLoad, limits: AdmissionLimits): AdmissionDecision {
  if (inFlight >= limits.maxInFlight) return { admit: false, reason: 'in-flight' };
  if (load.delayMs > limits.maxQueueMs && load.busy >= BUSY_THRESHOLD) return { admit: false, reason: 'queue' };
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
/** The window over which the least delay and the CPU use are taken. */
const WINDOW_MS = 100;

/**
 * The edge around decideAdmission: counts requests in progress, samples the
 * event loop's delay with one unref'd timer (how much later than asked a
 * 5 ms timer fires) and reads the process's CPU time once a window.
 * `shed` is called for each refused request.
 */
export class AdmissionControl {
  private inFlight = 0;
  /** what the last complete window showed */
  private load: LoopLoad = { delayMs: 0, busy: 0 };
  /** when the sampling timer should fire next */
  private expected = performance.now() + SAMPLE_MS;
  /** the window under way: its start (wall and CPU time) and least delay so far */
  private windowStart = performance.now();
  private windowCpu = process.cpuUsage();
  private windowDelayMs = Infinity;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly shed: (reason: 'in-flight' | 'queue') => void = () => {},
  ) {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.windowDelayMs = Math.min(this.windowDelayMs, Math.max(0, now - this.expected));
      this.expected = now + SAMPLE_MS;
      if (now - this.windowStart >= WINDOW_MS) {
        const cpu = process.cpuUsage(this.windowCpu);
        this.load = { delayMs: this.windowDelayMs, busy: (cpu.user + cpu.system) / 1000 / (now - this.windowStart) };
        this.windowStart = now;
        this.windowCpu = process.cpuUsage();
        this.windowDelayMs = Infinity;
      }
    }, SAMPLE_MS);
    this.timer.unref();
  }

  /**
   * Takes the request on (true; its slot is freed when the response closes)
   * or answers it 429 ThrottlingException with Retry-After (false).
   */
  admit(res: ServerResponse, requestId: string): boolean {
    const decision = decideAdmission(this.inFlight, this.load, this.limits);
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
