// Node agent, cached path: requests per second and latency of
// GET /v1/credentials answered from the cache, side by side in the same run
// with its ceiling — a bare node:http server (its own process) answering the
// same bytes with the same headers. Load comes from autocannon in a second
// process (keep-alive connections, like SDKs in pods).
//
// Setup: a real `pod-identity server` (local issuer, dev token signer) and a
// real `pod-identity agent` process; one token is fetched once, so every
// measured request is a cache hit. The agent's per-listener rate limit is
// raised out of the way (its check still runs on every request).
//
//   npm run build && node --import tsx bench/agent.ts
//   BENCH_AGENT_SECONDS=10 BENCH_AGENT_ROUNDS=3 BENCH_AGENT_CONNECTIONS=32 (defaults)
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../test/helpers/server-process.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_ISSUER, openDevSigner } from '../src/dev/token-signer.js';
import { pacedLoad, rawRequest } from './lib/paced-load.js';
import { createAssociations, startBenchAgent, startBenchServer } from './lib/control-plane.js';
import { cpuMs, median, startCeilingServer, stopProcess } from './lib/processes.js';
import { atLeast, below, progress, round, type ScenarioResult } from './lib/report.js';

const SECONDS = Number(process.env.BENCH_AGENT_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_AGENT_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_AGENT_CONNECTIONS ?? 32);
const RATE = 1000;

/** The load process: autocannon, plus exact per-response latencies when asked (the histogram keeps whole ms only). */
const LOAD_DRIVER = `
import autocannon from 'autocannon';
const options = JSON.parse(process.argv[1]);
const exact = options.exactLatency;
delete options.exactLatency;
const samples = [];
const instance = autocannon(options, (error, result) => {
  if (error) { console.error(error); process.exit(1); }
  samples.sort((a, b) => a - b);
  const pick = (p) => samples.length ? samples[Math.min(samples.length - 1, Math.ceil(p / 100 * samples.length) - 1)] : NaN;
  console.log(JSON.stringify({
    rps: result.requests.total / result.duration,
    total: result.requests.total,
    non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts,
    p50: exact ? pick(50) : result.latency.p50,
    p99: exact ? pick(99) : result.latency.p99,
    p999: exact ? pick(99.9) : result.latency.p99_9,
    max: exact ? samples.at(-1) : result.latency.max,
  }));
});
if (exact) instance.on('response', (_client, status, _bytes, ms) => { if (status === 200) samples.push(ms); });
`;



interface LoadResult {
  rps: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}




function load(options: Record<string, unknown>): Promise<LoadResult> {
  return new Promise((resolveLoad, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', LOAD_DRIVER, JSON.stringify(options)], { cwd: process.cwd(), maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`load driver failed: ${stderr || error.message}`));
      else resolveLoad(JSON.parse(stdout.trim().split('\n').pop()!) as LoadResult);
    });
  });
}


/** Runs the load and also reports the server process's CPU time per answered request (robust to a busy machine). */
async function measured(pid: number, options: Record<string, unknown>): Promise<LoadResult & { cpuUsPerRequest: number }> {
  const before = cpuMs(pid);
  const result = await load(options);
  return { ...result, cpuUsPerRequest: ((cpuMs(pid) - before) * 1000) / Math.max(1, result.total) };
}


export async function run(): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-'));
  const children: ChildProcess[] = [];
  try {
    progress('agent: starting server, agent and bare ceiling server');
    const signer = await openDevSigner(join(dir, 'signer'));
    const server = await startBenchServer(dir, { issuer: DEV_ISSUER, jwksFile: signer.jwksFile });
    children.push(server.process);
    await createAssociations(server.apiUrl, ['app']);
    // the per-listener rate limit is raised out of the way (its check still runs on every request)
    const { process: agentProcess, credentialsUrl: agentUrl } = await startBenchAgent(server.apiUrl, ['--rate-limit', '1000000', '--rate-limit-burst', '1000000']);
    children.push(agentProcess);

    const token = await signer.mint({ namespace: 'bench', serviceAccount: 'app', podName: 'bench-pod' });
    const first = await fetch(agentUrl, { headers: { authorization: token } });
    if (first.status !== 200) throw new Error(`agent answered ${first.status}: ${await first.text()}`);
    const body = Buffer.from(await first.arrayBuffer());
    const barePort = await freePort();
    const bareProcess = await startCeilingServer(barePort, body);
    children.push(bareProcess);
    const bareUrl = `http://127.0.0.1:${barePort}/v1/credentials`;

    const target = (url: string) => ({ url, headers: { authorization: token } });
    progress('agent: warm-up (3 s each)');
    await load({ ...target(bareUrl), connections: CONNECTIONS, duration: 3 });
    await load({ ...target(agentUrl), connections: CONNECTIONS, duration: 3 });

    type Measured = Awaited<ReturnType<typeof measured>>;
    const bare: Measured[] = [];
    const agent: Measured[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      progress(`agent: throughput round ${i}/${ROUNDS}, ${CONNECTIONS} connections, ${SECONDS} s each (bare, then agent)`);
      bare.push(await measured(bareProcess.pid!, { ...target(bareUrl), connections: CONNECTIONS, duration: SECONDS }));
      agent.push(await measured(agentProcess.pid!, { ...target(agentUrl), connections: CONNECTIONS, duration: SECONDS }));
    }
    progress(`agent: latency at ${RATE} requests/s evenly paced, ${SECONDS} s each (bare, then agent)`);
    const atRate = async (url: string) => {
      const r = await pacedLoad(new URL(url), [rawRequest('GET', new URL(url), { authorization: token })], { rate: RATE, seconds: SECONDS, connections: 8 });
      return { ...r, errors: r.unanswered, timeouts: 0 };
    };
    const bareAtRate = await atRate(bareUrl);
    const agentAtRate = await atRate(agentUrl);
    progress(`agent: autocannon --overallRate ${RATE} (bursts each second's quota), ${SECONDS} s each (bare, then agent)`);
    const bareBursts = await load({ ...target(bareUrl), connections: 10, overallRate: RATE, duration: SECONDS, exactLatency: true });
    const agentBursts = await load({ ...target(agentUrl), connections: 10, overallRate: RATE, duration: SECONDS, exactLatency: true });

    const failures = [...bare, ...agent, bareAtRate, agentAtRate, bareBursts, agentBursts].reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0);
    const ceilingRps = median(bare.map((r) => r.rps));
    const agentRps = median(agent.map((r) => r.rps));
    const ratio = (100 * agentRps) / ceilingRps;
    return {
      scenario: 'agent',
      description: `agent cached GET /v1/credentials vs a bare node:http server answering the same ${body.length} bytes`,
      figures: {
        'ceiling, bare node:http (req/s, median)': round(ceilingRps, 0),
        'agent, cached (req/s, median)': round(agentRps, 0),
        'agent / ceiling (%)': round(ratio, 1),
        'ceiling rounds (req/s)': bare.map((r) => round(r.rps, 0)).join(', '),
        'agent rounds (req/s)': agent.map((r) => round(r.rps, 0)).join(', '),
        'ceiling CPU per request (µs, median)': round(median(bare.map((r) => r.cpuUsPerRequest)), 1),
        'agent CPU per request (µs, median)': round(median(agent.map((r) => r.cpuUsPerRequest)), 1),
        'ceiling / agent CPU per request (%)': round((100 * median(bare.map((r) => r.cpuUsPerRequest))) / median(agent.map((r) => r.cpuUsPerRequest)), 1),
        'agent p50 at full load (ms, histogram)': median(agent.map((r) => r.p50)),
        'agent p99 at full load (ms, histogram)': median(agent.map((r) => r.p99)),
        [`agent p50 at ${RATE} req/s (ms)`]: round(agentAtRate.p50, 3),
        [`agent p99 at ${RATE} req/s (ms)`]: round(agentAtRate.p99, 3),
        [`agent p99.9 at ${RATE} req/s (ms)`]: round(agentAtRate.p999, 3),
        [`ceiling p50 at ${RATE} req/s (ms)`]: round(bareAtRate.p50, 3),
        [`ceiling p99 at ${RATE} req/s (ms)`]: round(bareAtRate.p99, 3),
        [`agent p50 / p99, autocannon -R ${RATE} bursts (ms)`]: `${round(agentBursts.p50, 3)} / ${round(agentBursts.p99, 3)}`,
        [`ceiling p50 / p99, autocannon -R ${RATE} bursts (ms)`]: `${round(bareBursts.p50, 3)} / ${round(bareBursts.p99, 3)}`,
        'response bytes': body.length,
        'failed responses (non-2xx, errors, timeouts)': failures,
      },
      targets: [
        atLeast('agent / ceiling throughput (%)', ratio, 80),
        below(`agent p99 at ${RATE} req/s (ms)`, agentAtRate.p99, 2),
        below('failed responses', failures, 1),
      ],
      notes: [
        `autocannon in a separate process, ${CONNECTIONS} keep-alive connections, ${ROUNDS} alternating rounds of ${SECONDS} s; medians reported.`,
        `Latency at ${RATE} req/s: a second process (bench/lib/paced-load.ts) writes one request every ${1000 / RATE} ms (open loop, 8 kept-alive connections, prebuilt request bytes) and times each from when it was due to the last byte of its answer. autocannon --overallRate sends each second's quota back to back at the start of the second, so its figures (shown too) are latency under a burst at full speed.`,
        'CPU per request is the server process\'s user+system time over the run divided by the requests answered: it does not depend on what else the machine is doing, so it shows the agent\'s own cost even when req/s are disturbed.',
        'The agent runs its full request path: route, per-listener token bucket, Host check, body/limit checks, SHA-256 of the token, cache lookup, pre-encoded response.',
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
