// EKS Auth over TLS (the agent↔server hop) against plain HTTP: the same
// built server on the same data (local issuer, JWKS-file verification, one
// API worker, so that one process's CPU is what is compared), restarted in
// turn with and without `tls: {}` (a certificate from the server's own CA),
// in alternating rounds. Each round measures, with 32 kept-alive connections
// (as agents keep theirs: a TLS handshake per connection, not per request):
//   - repeated tokens (500 pods, the verified-token cache answers): capacity
//     and the server's CPU per request over BENCH_TLS_SECONDS;
//   - unique tokens (each never seen, RS256-verified): BENCH_TLS_UNIQUE
//     requests, the same two figures.
// Run: npm run build && node --import tsx bench/eks-auth-tls.ts
// Knobs: BENCH_TLS_SECONDS (5), BENCH_TLS_UNIQUE (2000), BENCH_TLS_ROUNDS (2)
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedLoop, signedRequests, type ClosedLoopResult } from './lib/capacity.js';
import { createAssociations, startBenchServer } from './lib/control-plane.js';
import { describeSplit, withSplitCores } from './lib/cpus.js';
import { median, stopProcess } from './lib/processes.js';
import { atMost, progress, round, type ScenarioResult } from './lib/report.js';
import { BENCH_ISSUER, BENCH_SERVICE_ACCOUNTS, tokenMinter } from './lib/tokens.js';

const SECONDS = Number(process.env.BENCH_TLS_SECONDS ?? 5);
const UNIQUE = Number(process.env.BENCH_TLS_UNIQUE ?? 2000);
const ROUNDS = Number(process.env.BENCH_TLS_ROUNDS ?? 2);
const CONNECTIONS = 32;
const PODS = 500;

type Mode = 'plain' | 'tls';

interface Round {
  repeated: ClosedLoopResult;
  unique: ClosedLoopResult;
}

/** How much more the TLS figure costs than the plain one, in % (positive: TLS worse). */
const overhead = (plain: number, tls: number, higherIsBetter: boolean) => round((100 * (higherIsBetter ? plain - tls : tls - plain)) / plain, 1);

export function run(): Promise<ScenarioResult> {
  return withSplitCores(async (split) => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-eks-auth-tls-'));
    const minter = tokenMinter();
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(minter.jwks));
    let server: ChildProcess | undefined;
    try {
      progress(`eks-auth-tls: minting ${PODS} repeated and ${ROUNDS * 2} × ${UNIQUE} unique tokens`);
      const repeatedTokens = await Promise.all(Array.from({ length: PODS }, (_, pod) => minter.mint(pod)));
      const uniqueTokens: string[][] = [];
      for (let i = 0; i < ROUNDS * 2; i++) uniqueTokens.push(await Promise.all(Array.from({ length: UNIQUE }, (_, k) => minter.mint(PODS + i * UNIQUE + k))));

      const rounds: Record<Mode, Round[]> = { plain: [], tls: [] };
      let associated = false;
      let set = 0;
      for (let i = 1; i <= ROUNDS; i++) {
        for (const mode of ['plain', 'tls'] as const) {
          progress(`eks-auth-tls: round ${i}/${ROUNDS}, ${mode}: repeated tokens ${SECONDS} s, then ${UNIQUE} unique`);
          const started = await startBenchServer(dir, { issuer: BENCH_ISSUER, jwksFile }, [], 1, undefined, mode === 'tls' ? { tls: {} } : {});
          server = started.process;
          const url = started.apiUrl;
          if (!associated) {
            await createAssociations(url, Array.from({ length: BENCH_SERVICE_ACCOUNTS }, (_, sa) => `sa-${sa}`));
            associated = true;
          }
          const repeated = await signedRequests(url, repeatedTokens);
          const unique = await signedRequests(url, uniqueTokens[set++]!);
          // JIT and SQLite pages: the first seconds of a fresh process are not its steady state
          await closedLoop(url, repeated, server.pid!, { connections: CONNECTIONS, seconds: 2 });
          const result = {
            repeated: await closedLoop(url, repeated, server.pid!, { connections: CONNECTIONS, seconds: SECONDS }),
            unique: await closedLoop(url, unique, server.pid!, { connections: CONNECTIONS, once: true }),
          };
          const failures = result.repeated.failures + result.unique.failures;
          if (failures > 0) throw new Error(`${mode}: ${failures} requests failed`);
          rounds[mode].push(result);
          await stopProcess(server);
          server = undefined;
        }
      }
      const med = (mode: Mode, pick: (r: Round) => number) => median(rounds[mode].map(pick));
      const figure = (mode: Mode, pick: (r: Round) => number, digits = 0) => round(med(mode, pick), digits);
      const cpuRepeated = overhead(med('plain', (r) => r.repeated.cpuMicros), med('tls', (r) => r.repeated.cpuMicros), false);
      const cpuUnique = overhead(med('plain', (r) => r.unique.cpuMicros), med('tls', (r) => r.unique.cpuMicros), false);
      const rpsRepeated = overhead(med('plain', (r) => r.repeated.requestsPerSecond), med('tls', (r) => r.repeated.requestsPerSecond), true);
      const rpsUnique = overhead(med('plain', (r) => r.unique.requestsPerSecond), med('tls', (r) => r.unique.requestsPerSecond), true);
      const list = (mode: Mode, pick: (r: Round) => number) => rounds[mode].map((r) => round(pick(r), 0)).join(', ');
      return {
        scenario: 'eks-auth-tls',
        description: 'EKS Auth AssumeRoleForPodIdentity over TLS vs plain HTTP: one API worker, kept-alive connections, repeated and unique tokens',
        figures: {
          'repeated tokens: req/s plain / TLS (median)': `${figure('plain', (r) => r.repeated.requestsPerSecond)} / ${figure('tls', (r) => r.repeated.requestsPerSecond)}`,
          'repeated tokens: server CPU per request plain / TLS (µs, median)': `${figure('plain', (r) => r.repeated.cpuMicros)} / ${figure('tls', (r) => r.repeated.cpuMicros)}`,
          'unique tokens: req/s plain / TLS (median)': `${figure('plain', (r) => r.unique.requestsPerSecond)} / ${figure('tls', (r) => r.unique.requestsPerSecond)}`,
          'unique tokens: server CPU per request plain / TLS (µs, median)': `${figure('plain', (r) => r.unique.cpuMicros)} / ${figure('tls', (r) => r.unique.cpuMicros)}`,
          'TLS overhead, CPU per request: repeated / unique (%)': `${cpuRepeated} / ${cpuUnique}`,
          'TLS overhead, capacity: repeated / unique (%)': `${rpsRepeated} / ${rpsUnique}`,
          'rounds, repeated req/s plain | TLS': `${list('plain', (r) => r.repeated.requestsPerSecond)} | ${list('tls', (r) => r.repeated.requestsPerSecond)}`,
          'rounds, unique CPU µs plain | TLS': `${list('plain', (r) => r.unique.cpuMicros)} | ${list('tls', (r) => r.unique.cpuMicros)}`,
        },
        targets: [
          atMost('TLS: CPU per request over plain, repeated tokens (%)', cpuRepeated, 10),
          atMost('TLS: CPU per request over plain, unique tokens (%)', cpuUnique, 10),
          atMost('TLS: capacity below plain, repeated tokens (%)', rpsRepeated, 10),
          atMost('TLS: capacity below plain, unique tokens (%)', rpsUnique, 10),
        ],
        notes: [
          `${ROUNDS} alternating rounds (plain, then TLS), the server restarted for each on the same data, warmed 2 s before measuring; medians reported. CPU per request is the server's user+system from /proc.`,
          `Cores: ${describeSplit(split)}.`,
          `${CONNECTIONS} kept-alive connections, as agents keep theirs: each TLS handshake is paid once per connection. TLS 1.2+ with the server's generated certificate; the client does not check it (trust is not what is measured).`,
        ],
      };
    } finally {
      await stopProcess(server);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
