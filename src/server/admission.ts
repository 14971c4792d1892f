// Overload shedding for EKS Auth. Past its capacity a process that takes
// every request queues them all, and every answer becomes late: nodes' agents
// give up after their deadline and retry, adding load. So each API process
// bounds what it takes on: at most `maxInFlight` AssumeRoleForPodIdentity
// requests at once, and, while it is overloaded, only a share of the new ones.
// Overloaded means: over a 50 ms window the event loop was on average more
// than `maxQueueMs` late (requests that arrived waited about that long before
// this process even saw them) and never on time (no sample under a quarter of
// that), while the process used most of a core. A process kept late by its neighbours on a busy node, not by its
// own queue, gets no faster by refusing work; the bar is 0.8 of a core, not
// all of it, because the kernel's network work on the process's core is not
// counted as its CPU (at 10,000 requests/s a process alone on a core showed
// 0.81-0.89 while its loop was 40-70 ms late).
// The share is a feedback loop, not a switch: the second overloaded window in
// a row halves it, and each one after it (one GC pause or JIT-cold turn makes
// at most one such window, and sheds nothing); each other window gives 1.25 %
// back. A switch (refuse everything in a
// late window, take everything in the next) let the queue refill every other
// window: at twice its capacity a process answered fewer requests a second
// than it was sent, and agents' waits grew to seconds. Halving finds the
// share the process keeps up with within a few windows; the slow climb back
// probes for more without refilling the queue at once.
// A refused request costs a quarter to a third of a taken one: a pre-encoded
// 429 ThrottlingException with Retry-After, written before its body is read;
// the agent backs off on it.
import type { ServerResponse } from 'node:http';

export interface AdmissionLimits {
  /** AssumeRoleForPodIdentity requests in progress at most, per API process */
  maxInFlight: number;
  /** mean event-loop delay (ms) over a window, with the process busy, past which the share of new requests taken on is halved */
  maxQueueMs: number;
}

/** What the last complete window showed. */
export interface LoopLoad {
  /** the event loop's mean delay over the window's samples, ms */
  delayMs: number;
  /** the least delay sampled in the window, ms */
  leastDelayMs: number;
  /** CPU time the process used over the window's wall time (1 = one core all the time) */
  busy: number;
}

export type AdmissionDecision = { admit: true } | { admit: false; reason: 'in-flight' | 'queue' };

/** The share of a core above which a late loop is this process's own queue. */
export const BUSY_THRESHOLD = 0.8;
/** What an overloaded window leaves of the share taken on, from the second in a row. */
const CUT = 0.5;
/** What a window that was not overloaded gives back: from a tenth to all in under four seconds. */
const RECOVERY = 0.0125;
/** The least share: requests keep reaching the work, so a recovered process is noticed. */
export const MIN_SHARE = 0.02;

/** Whether a window showed this process behind its own work. Pure. */
export function isOverloaded(load: LoopLoad, limits: AdmissionLimits): boolean {
  return load.delayMs > limits.maxQueueMs && load.leastDelayMs > limits.maxQueueMs / 4 && load.busy >= BUSY_THRESHOLD;
}

/**
 * What is taken on: `share` of new requests (1: all), chosen by `credit`,
 * which grows by the share with each request; a request is taken when a
 * whole one has built up (evenly spread, no randomness). `lateWindows`:
 * overloaded windows in a row, up to the last one.
 */
export interface ShareState {
  share: number;
  credit: number;
  lateWindows: number;
}

/** The state after a window: the second overloaded window in a row, and each after it, halves the share; any other gives a little back. Pure. */
export function afterWindow(state: ShareState, load: LoopLoad, limits: AdmissionLimits): ShareState {
  if (!isOverloaded(load, limits)) return { share: Math.min(1, state.share + RECOVERY), credit: state.credit, lateWindows: 0 };
  const lateWindows = state.lateWindows + 1;
  return { share: lateWindows >= 2 ? Math.max(MIN_SHARE, state.share * CUT) : state.share, credit: state.credit, lateWindows };
}

/** Whether to take a request on, given what is in progress and the share in force; the credit it leaves. Pure. */
export function decideAdmission(inFlight: number, state: ShareState, limits: AdmissionLimits): { decision: AdmissionDecision; credit: number } {
  if (inFlight >= limits.maxInFlight) return { decision: { admit: false, reason: 'in-flight' }, credit: state.credit };
  if (state.share >= 1) return { decision: { admit: true }, credit: 0 };
  const credit = state.credit + state.share;
  return credit >= 1 ? { decision: { admit: true }, credit: credit - 1 } : { decision: { admit: false, reason: 'queue' }, credit };
}

/** Seconds a refused caller is told to wait: one second, the smallest Retry-After, is longer than any queue we allow. */
export const RETRY_AFTER_SECONDS = 1;

const SHED_BODY = JSON.stringify({ __type: 'ThrottlingException', message: 'EKS Auth is at capacity; retry after the Retry-After delay.' });
const SHED_HEADERS = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(SHED_BODY)), 'x-amzn-errortype', 'ThrottlingException', 'retry-after', String(RETRY_AFTER_SECONDS)];

/** How often the event loop's delay is sampled: the delay is known within this much. */
const SAMPLE_MS = 5;
/** The window over which the delays and the CPU use are taken. */
const WINDOW_MS = 50;

/**
 * The edge around decideAdmission: counts requests in progress, samples the
 * event loop's delay with one unref'd timer (how much later than asked a
 * 5 ms timer fires), reads the process's CPU time once a window and moves
 * the share by what the window showed. `shed` is called for each refused request.
 */
export class AdmissionControl {
  private inFlight = 0;
  private state: ShareState = { share: 1, credit: 0, lateWindows: 0 };
  /** when the sampling timer should fire next */
  private expected = performance.now() + SAMPLE_MS;
  /** the window under way: its start (wall and CPU time) and the delays sampled so far */
  private windowStart = performance.now();
  private windowCpu = process.cpuUsage();
  private windowDelaySum = 0;
  private windowLeastDelay = Infinity;
  private windowSamples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly shed: (reason: 'in-flight' | 'queue') => void = () => {},
  ) {
    this.timer = setInterval(() => {
      const now = performance.now();
      const delay = Math.max(0, now - this.expected);
      this.windowDelaySum += delay;
      this.windowLeastDelay = Math.min(this.windowLeastDelay, delay);
      this.windowSamples++;
      this.expected = now + SAMPLE_MS;
      if (now - this.windowStart >= WINDOW_MS) {
        const cpu = process.cpuUsage(this.windowCpu);
        const load = { delayMs: this.windowDelaySum / this.windowSamples, leastDelayMs: this.windowLeastDelay, busy: (cpu.user + cpu.system) / 1000 / (now - this.windowStart) };
        this.state = afterWindow(this.state, load, this.limits);
        this.windowStart = now;
        this.windowCpu = process.cpuUsage();
        this.windowDelaySum = 0;
        this.windowLeastDelay = Infinity;
        this.windowSamples = 0;
      }
    }, SAMPLE_MS);
    this.timer.unref();
  }

  /** The share of new requests taken on now (1: all). */
  get share(): number {
    return this.state.share;
  }

  /**
   * Takes the request on (true; its slot is freed when the response closes)
   * or answers it 429 ThrottlingException with Retry-After (false).
   */
  admit(res: ServerResponse, requestId: string): boolean {
    const { decision, credit } = decideAdmission(this.inFlight, this.state, this.limits);
    this.state.credit = credit;
    if (!decision.admit) {
      this.shed(decision.reason);
      res.writeHead(429, [...SHED_HEADERS, 'x-amzn-requestid', requestId]);
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
