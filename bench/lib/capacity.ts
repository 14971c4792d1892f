// Closed-loop load for the EKS Auth scenarios that need a capacity figure
// (eks-auth-tls, overload): autocannon keep-alive connections, each sending
// its next signed AssumeRoleForPodIdentity as soon as the last is answered,
// with the server process's CPU time per answered request beside the rate.
import autocannon from 'autocannon';
import { signedAssumeRole } from './control-plane.js';
import { cpuMs } from './processes.js';

export const ASSUME_ROLE_PATH = '/clusters/bench/assume-role-for-pod-identity';

export interface SignedRequest {
  headers: Record<string, string>;
  body: string;
}

/** Signed requests for `tokens`, to the server at `apiUrl`. */
export function signedRequests(apiUrl: string, tokens: string[]): Promise<SignedRequest[]> {
  return Promise.all(tokens.map((token) => signedAssumeRole(new URL(ASSUME_ROLE_PATH, apiUrl), token)));
}

export interface ClosedLoopResult {
  requestsPerSecond: number;
  answered: number;
  failures: number;
  p99: number;
  /** CPU time of the server process (and its workers) per answered request */
  cpuMicros: number;
}

/**
 * Cycles through `pool` for `seconds`, or sends each of its requests once
 * when `once` (a pool of never-seen tokens). autocannon does not check the
 * server's certificate (https: the bench measures TLS's cost, not trust).
 */
export async function closedLoop(url: string, pool: SignedRequest[], pid: number, options: { connections: number; seconds?: number; once?: boolean }): Promise<ClosedLoopResult> {
  let next = 0;
  const before = cpuMs(pid);
  // wall time of our own: autocannon's `duration` is whole seconds, too coarse for a run of a set number of requests
  const started = performance.now();
  const result = await autocannon({
    url,
    connections: options.connections,
    ...(options.once ? { amount: pool.length } : { duration: options.seconds ?? 5 }),
    requests: [
      {
        method: 'POST',
        path: ASSUME_ROLE_PATH,
        setupRequest: (req) => {
          const item = pool[next++ % pool.length]!;
          return { ...req, headers: item.headers, body: item.body };
        },
      },
    ],
  });
  const seconds = (performance.now() - started) / 1000;
  const answered = Math.max(1, result.requests.total);
  return {
    requestsPerSecond: result.requests.total / seconds,
    answered: result.requests.total,
    failures: result.non2xx + result.errors + result.timeouts,
    p99: result.latency.p99,
    cpuMicros: ((cpuMs(pid) - before) * 1000) / answered,
  };
}
