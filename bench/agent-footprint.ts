// Node agent, memory and the cold-start tail, beside the lean reference: our
// `pod-identity agent` (with the DaemonSet's NODE_OPTIONS) and a bare
// node:http server doing the same work (bench/lib/lean-agent.ts), each
// started fresh, in alternating rounds. For each: resident memory idle, then
// 2,000 distinct pod tokens at 200 a second, each on its own new connection
// (a pod's first call: one cold EKS Auth fetch), then resident memory with
// all 2,000 cached. An empty `node` process is measured too: the floor
// nothing written in Node goes under.
//
// The control plane is a real `pod-identity server` (local issuer, dev token
// signer), warmed up first; every process run gets tokens of its own, so the
// server's verified-token cache helps none of them.
//
//   npm run build && node --import tsx bench/agent-footprint.ts
//   knobs (defaults): BENCH_FOOTPRINT_TOKENS=2000 BENCH_FOOTPRINT_RATE=200 BENCH_FOOTPRINT_ROUNDS=2 BENCH_FOOTPRINT_SETTLE_SECONDS=3
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_ISSUER, openDevSigner } from '../src/dev/token-signer.js';
import { freePort } from '../test/helpers/server-process.js';
import { AGENT_NODE_OPTIONS, createAssociations, startBenchAgent, startBenchServer } from './lib/control-plane.js';
import { startLeanAgent } from './lib/lean-agent.js';
import { median, rssMiB, startProcess, stopProcess } from './lib/processes.js';
import { atMost, below, percentile, progress, round, type ScenarioResult } from './lib/report.js';
import { mintTokens, scrape, storm, sumSamples, warmUpServer } from './lib/storm-load.js';

const TOKENS = Number(process.env.BENCH_FOOTPRINT_TOKENS ?? 2000);
const RATE = Number(process.env.BENCH_FOOTPRINT_RATE ?? 200);
const ROUNDS = Number(process.env.BENCH_FOOTPRINT_ROUNDS ?? 2);
const SETTLE_MS = Number(process.env.BENCH_FOOTPRINT_SETTLE_SECONDS ?? 3) * 1000;
const SERVICE_ACCOUNTS = 50;

interface Footprint {
  startMs: number;
  idleMiB: number;
  cachedMiB: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  ok: number;
  failed: number;
  /** the agent's own heap figures (prom-client's nodejs_* metrics), MiB: used / total / external */
  heap?: { idle: string; cached: string };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function heapOf(metricsUrl: string): Promise<string> {
  const text = await scrape(metricsUrl);
  const mib = (name: string) => round(sumSamples(text, name) / 2 ** 20, 1);
  return `${mib('nodejs_heap_size_used_bytes')} / ${mib('nodejs_heap_size_total_bytes')} / ${mib('nodejs_external_memory_bytes')}`;
}

/** One process run: start it, read its idle memory, fill it with `tokensFile` at RATE, read its memory again. */
async function measure(start: () => Promise<{ process: ChildProcess; url: string; metricsUrl?: string }>, tokensFile: string): Promise<Footprint> {
  const started = performance.now();
  const target = await start();
  const startMs = performance.now() - started;
  try {
    await settle(1000);
    const idleMiB = rssMiB(target.process.pid!);
    const idleHeap = target.metricsUrl ? await heapOf(target.metricsUrl) : undefined;
    const result = await storm({ url: target.url, tokensFile, seconds: TOKENS / RATE, sockets: 256, timeoutMs: 10_000, fresh: true });
    await settle(SETTLE_MS);
    const cachedMiB = rssMiB(target.process.pid!);
    const latencies = result.latencies.filter((ms): ms is number => ms !== null);
    const ok = result.statuses['200'] ?? 0;
    return {
      startMs,
      idleMiB,
      cachedMiB,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
      max: latencies.reduce((m, ms) => Math.max(m, ms), 0),
      ok,
      failed: result.sent - ok,
      ...(idleHeap !== undefined && { heap: { idle: idleHeap, cached: await heapOf(target.metricsUrl!) } }),
    };
  } finally {
    await stopProcess(target.process);
  }
}

const medianOf = (runs: Footprint[], pick: (f: Footprint) => number) => round(median(runs.map(pick)), 1);

export async function run(): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-footprint-'));
  const children: ChildProcess[] = [];
  try {
    const signer = await openDevSigner(join(dir, 'signer'));
    const runs = ROUNDS * 2 + 1;
    progress(`agent-footprint: minting ${runs} × ${TOKENS} tokens (one set per process run) and 500 for the server's warm-up`);
    const tokenFiles: string[] = [];
    for (let i = 0; i < runs; i++) {
      const file = join(dir, `tokens-${i}.txt`);
      writeFileSync(file, (await mintTokens(signer, TOKENS, `footprint-${i}`, SERVICE_ACCOUNTS)).join('\n'));
      tokenFiles.push(file);
    }
    const warmUpTokens = await mintTokens(signer, 500, 'warm-up', SERVICE_ACCOUNTS);
    const server = await startBenchServer(dir, { issuer: DEV_ISSUER, jwksFile: signer.jwksFile });
    children.push(server.process);
    await createAssociations(server.apiUrl, Array.from({ length: SERVICE_ACCOUNTS }, (_, sa) => `sa-${sa}`));
    await warmUpServer(server.apiUrl, warmUpTokens);

    const empty = await startProcess(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], {}, 'ready');
    await settle(1000);
    const emptyMiB = rssMiB(empty.pid!);
    await stopProcess(empty);

    const startAgent = (nodeArgs: string[]) => async () => {
      const agent = await startBenchAgent(server.apiUrl, [], nodeArgs);
      return { process: agent.process, url: agent.credentialsUrl, metricsUrl: agent.metricsUrl };
    };
    const startLean = async () => {
      const port = await freePort();
      return { process: await startLeanAgent(server.apiUrl, port, AGENT_NODE_OPTIONS), url: `http://127.0.0.1:${port}/v1/credentials` };
    };
    const lean: Footprint[] = [];
    const agent: Footprint[] = [];
    let file = 0;
    for (let i = 1; i <= ROUNDS; i++) {
      progress(`agent-footprint: round ${i}/${ROUNDS}: lean node:http agent, then ours (${TOKENS} tokens at ${RATE}/s each)`);
      lean.push(await measure(startLean, tokenFiles[file++]!));
      agent.push(await measure(startAgent(AGENT_NODE_OPTIONS), tokenFiles[file++]!));
    }
    progress('agent-footprint: ours once more without NODE_OPTIONS (V8 defaults), for the heap headroom');
    const defaults = await measure(startAgent([]), tokenFiles[file++]!);

    const agentIdle = medianOf(agent, (f) => f.idleMiB);
    const agentCached = medianOf(agent, (f) => f.cachedMiB);
    const leanIdle = medianOf(lean, (f) => f.idleMiB);
    const leanCached = medianOf(lean, (f) => f.cachedMiB);
    const perEntry = (idle: number, cached: number) => round(((cached - idle) * 1024) / TOKENS, 2);
    const failed = [...lean, ...agent, defaults].reduce((n, f) => n + f.failed, 0);
    const agentP999 = medianOf(agent, (f) => f.p999);
    const runsOf = (list: Footprint[], pick: (f: Footprint) => number) => list.map((f) => round(pick(f), 1)).join(', ');
    return {
      scenario: 'agent-footprint',
      description: `agent resident memory idle and with ${TOKENS} cached tokens, and the cold-start tail of filling it (${TOKENS} distinct tokens at ${RATE}/s, a new connection each), beside a bare node:http agent doing the same work`,
      figures: {
        'empty node process, idle (MiB)': round(emptyMiB, 1),
        'lean node:http agent, idle (MiB, median)': leanIdle,
        [`lean node:http agent, ${TOKENS} cached (MiB, median)`]: leanCached,
        'lean: per cached entry (KiB)': perEntry(leanIdle, leanCached),
        'agent, idle (MiB, median)': agentIdle,
        [`agent, ${TOKENS} cached (MiB, median)`]: agentCached,
        'agent: per cached entry (KiB)': perEntry(agentIdle, agentCached),
        'agent idle, rounds (MiB)': runsOf(agent, (f) => f.idleMiB),
        [`agent ${TOKENS} cached, rounds (MiB)`]: runsOf(agent, (f) => f.cachedMiB),
        'agent V8 heap used / total / external, idle (MiB)': agent[0]?.heap?.idle ?? '',
        [`agent V8 heap used / total / external, ${TOKENS} cached (MiB)`]: agent[0]?.heap?.cached ?? '',
        'agent without NODE_OPTIONS: idle / cached (MiB)': `${round(defaults.idleMiB, 1)} / ${round(defaults.cachedMiB, 1)}`,
        'agent without NODE_OPTIONS: V8 heap used / total / external, cached (MiB)': defaults.heap?.cached ?? '',
        'start to ready: lean / agent (ms, median)': `${medianOf(lean, (f) => f.startMs)} / ${medianOf(agent, (f) => f.startMs)}`,
        'cold fill p50 / p99 / p99.9 / max, lean (ms, median)': `${medianOf(lean, (f) => f.p50)} / ${medianOf(lean, (f) => f.p99)} / ${medianOf(lean, (f) => f.p999)} / ${medianOf(lean, (f) => f.max)}`,
        'cold fill p50 / p99 / p99.9 / max, agent (ms, median)': `${medianOf(agent, (f) => f.p50)} / ${medianOf(agent, (f) => f.p99)} / ${agentP999} / ${medianOf(agent, (f) => f.max)}`,
        'failed requests (all runs)': failed,
      },
      targets: [
        atMost('agent idle RSS (MiB)', agentIdle, 40),
        atMost(`agent RSS with ${TOKENS} cached tokens (MiB)`, agentCached, 48),
        below(`agent cold fill p99.9, ${TOKENS} tokens at ${RATE}/s (ms)`, agentP999, 100),
        below('failed requests', failed, 1),
      ],
      notes: [
        `${ROUNDS} alternating rounds (lean, then ours), each process started fresh; medians reported. The machine's 2 cores are shared with other work: latencies are noisy, resident memory much less so.`,
        `Both run with the DaemonSet's NODE_OPTIONS (${AGENT_NODE_OPTIONS.join(' ')}), ours with its shipped flags; one more run of ours without them shows what V8's defaults cost.`,
        'RSS is VmRSS from /proc, read 1 s after the process said it was ready (idle) and after the fill plus a quiet settle time (cached).',
      ],
    };
  } finally {
    for (const child of children.reverse()) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
