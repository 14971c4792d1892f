// What the server's readiness depends on beyond its own listeners and store:
// each cluster's token-signing keys (a JWKS file, a jwksUri, OIDC discovery
// or the API server's own JWKS) and, where the cluster is reached through a
// kubeconfig, its API server (TokenReview, pod liveness, ServiceAccounts,
// the CRD watch). Each is probed in the background, apart from the requests
// that need it: every 10 s while it answers, every 2 s while it does not, so
// a failure is seen within about 15 s and a recovery within about 2 s.
// /readyz answers from the last results (its 503 body names what fails and
// why), and each result is a gauge, pod_identity_dependency_up{cluster,dependency}.
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../lib/logger.js';

type DependencyKind = 'signing-keys' | 'api-server';

export interface DependencyCheck {
  cluster: string;
  dependency: DependencyKind;
  /** what is probed, for /readyz and logs, e.g. "OIDC discovery of https://issuer" */
  describe: string;
  /** resolves when the dependency answers usefully; rejects with the reason otherwise */
  probe(): Promise<void>;
}

export interface MonitorTiming {
  /** between probes of a dependency that answered */
  healthyIntervalMs: number;
  /** between probes of a dependency that did not */
  failingIntervalMs: number;
  /** a probe slower than this counts as a failure */
  timeoutMs: number;
}

const DEFAULT_TIMING: MonitorTiming = { healthyIntervalMs: 10_000, failingIntervalMs: 2_000, timeoutMs: 5_000 };

/** Where a dependency stands: not probed yet, answering, or failing with a reason. */
type DependencyState = { kind: 'unknown' } | { kind: 'up' } | { kind: 'down'; reason: string };

/** The /readyz line of a dependency that keeps the server from being ready, or undefined when it does not. */
export function readinessProblem(check: Pick<DependencyCheck, 'cluster' | 'dependency' | 'describe'>, state: DependencyState): string | undefined {
  const what = `cluster ${check.cluster}: ${check.dependency} (${check.describe})`;
  if (state.kind === 'unknown') return `${what}: not checked yet`;
  if (state.kind === 'down') return `${what}: ${state.reason}`;
  return undefined;
}

function withTimeout(probe: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([probe, deadline]).finally(() => clearTimeout(timer));
}

/** The reason on one line; fetch's "fetch failed" gets its cause's code (ECONNREFUSED, ENOTFOUND, …). */
function oneLine(error: unknown): string {
  const message = ((error as Error)?.message ?? String(error)).replace(/\s+/g, ' ').trim().slice(0, 300) || 'failed';
  const code = ((error as Error)?.cause as NodeJS.ErrnoException | undefined)?.code;
  return code && !message.includes(code) ? `${message} (${code})` : message;
}

export interface DependencyMonitorOptions {
  checks: readonly DependencyCheck[];
  registry: Registry;
  logger: Logger;
  timing?: Partial<MonitorTiming>;
}

export class DependencyMonitor {
  private readonly states: DependencyState[];
  private readonly timers: (NodeJS.Timeout | undefined)[];
  private readonly timing: MonitorTiming;
  private closed = false;

  constructor(private readonly options: DependencyMonitorOptions) {
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.states = options.checks.map(() => ({ kind: 'unknown' }));
    this.timers = options.checks.map(() => undefined);
    const { checks } = options;
    const states = this.states;
    new Gauge({
      name: 'pod_identity_dependency_up',
      help: 'Whether a dependency of token verification answered its last probe (1) or not (0): a cluster\'s signing keys or its API server',
      labelNames: ['cluster', 'dependency'],
      registers: [options.registry],
      collect() {
        checks.forEach((check, i) => this.set({ cluster: check.cluster, dependency: check.dependency }, states[i]!.kind === 'up' ? 1 : 0));
      },
    });
  }

  /** Probes every dependency now, then on its own schedule; resolves once each has answered (or timed out) once. */
  start(): Promise<void> {
    return Promise.all(this.options.checks.map((_check, i) => this.run(i))).then(() => undefined);
  }

  /** One line per dependency that keeps the server from being ready. */
  problems(): string[] {
    const out: string[] = [];
    this.options.checks.forEach((check, i) => {
      const problem = readinessProblem(check, this.states[i]!);
      if (problem) out.push(problem);
    });
    return out;
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
  }

  private async run(i: number): Promise<void> {
    if (this.closed) return;
    const check = this.options.checks[i]!;
    const before = this.states[i]!;
    let after: DependencyState;
    try {
      await withTimeout(check.probe(), this.timing.timeoutMs);
      after = { kind: 'up' };
    } catch (error) {
      after = { kind: 'down', reason: oneLine(error) };
    }
    if (this.closed) return;
    this.states[i] = after;
    const labels = { cluster: check.cluster, dependency: check.dependency, source: check.describe };
    if (after.kind === 'down' && (before.kind !== 'down' || before.reason !== after.reason)) {
      this.options.logger.warn({ ...labels, reason: after.reason }, 'a dependency does not answer: not ready');
    } else if (after.kind === 'up' && before.kind === 'down') {
      this.options.logger.info(labels, 'a dependency answers again');
    }
    const delay = after.kind === 'up' ? this.timing.healthyIntervalMs : this.timing.failingIntervalMs;
    const timer = setTimeout(() => void this.run(i), delay);
    timer.unref();
    this.timers[i] = timer;
  }
}
