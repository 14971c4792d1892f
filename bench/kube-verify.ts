// AssumeRoleForPodIdentity when the server asks the cluster: the TokenReview
// and pod-liveness path, measured black-box against a real kube-apiserver
// (test/peers/kube.ts), so that any build can be measured by the same harness
// (the yardstick for replacing our Kubernetes client: "no regression beyond
// 10 %"). Every measured request carries a pod-bound token from TokenRequest
// (audience pods.eks.amazonaws.com) that no server process has seen: a miss of
// every cache of ours. Two modes, each its own server process:
//   - token-review: the cluster has only `kubeconfig`: one TokenReview per token;
//   - jwks-liveness: `kubeconfig` and `tokenReview: false`: the API server's
//     JWKS, verified locally, plus one pod GET per pod (remembered 20 s) for
//     revocation. The tokens of a round spread evenly over all pods, and the
//     server is fresh each round, so every pod is read once per round.
// A round: a fresh `pod-identity server` (one process, `workers: 1`, SQLite,
// local issuer, audit log at info), its associations created through the EKS
// API, a warm-up on tokens of separate warm-up pods (which keeps the measured
// pods unread), 200 requests one at a time, each on a pod of its own (one
// request's anatomy without queueing), then BENCH_KUBE_REQUESTS SigV4-signed
// requests in a closed loop with BENCH_KUBE_CONCURRENCY in flight over
// keep-alive connections: the measured ones. Each answer must be 200 with
// credentials. Measured: requests/s, latency p50/p99 (write to last byte),
// CPU per request of the server, the kube-apiserver and etcd (/proc, before
// and after), what the apiserver counted (TokenReviews, pod GETs and their
// mean handling time, its /metrics) and the server's mean handling time (its
// /metrics).
//
// A/B in one run: with BENCH_BASELINE_CLI set, a baseline build runs beside
// this checkout's, alternately (baseline, current, baseline, …) per mode, on
// the same apiserver, each round with its own tokens; the figures are the
// medians of the rounds, and the targets are current/baseline: CPU per
// request <= 1.10 and throughput >= 0.90 per mode. Without it, this build's
// figures only, no targets.
//
// Run: npm run build && node --import tsx bench/kube-verify.ts
// A/B: BENCH_BASELINE_CLI=/path/to/previous/dist/cli/main.js BENCH_BASELINE_NODE=/path/to/node npm run bench -- kube-verify
// Knobs: BENCH_BASELINE_CLI (unset: no baseline), BENCH_BASELINE_NODE (the baseline's node; default BENCH_NODE),
//        BENCH_NODE (the node this build's server runs on; default the bench's own), BENCH_CLI (this build's CLI),
//        BENCH_KUBE_REQUESTS (3000 per round), BENCH_KUBE_ROUNDS (3 per build and mode),
//        BENCH_KUBE_CONCURRENCY (16), BENCH_KUBE_PODS (1000),
//        BENCH_KUBE_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (node flags for every server process, both builds).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { httpsJson } from '../test/peers/https.js';
import { startKubeControlPlane, type KubeControlPlane } from '../test/peers/kube.js';
import { createNamespace, createPod, createServiceAccount, requestPodToken } from '../test/peers/kube-api.js';
import { createAssociations, nodeArgsFrom, signedAssumeRole, startBenchServer, type BenchCluster, type BenchServer } from './lib/control-plane.js';
import { CURRENT_BUILD, cpuMs, cpuSplitMs, median, rssMiB, stopProcess, type Build } from './lib/processes.js';
import { atLeast, atMost, percentile, progress, round, type ScenarioResult, type Target } from './lib/report.js';

const REQUESTS = Number(process.env.BENCH_KUBE_REQUESTS ?? 3000);
const ROUNDS = Number(process.env.BENCH_KUBE_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_KUBE_CONCURRENCY ?? 16);
const PODS = Number(process.env.BENCH_KUBE_PODS ?? 1000);
const SERVICE_ACCOUNTS = 5;
/** pods whose tokens only warm a fresh server up, so that the measured pods are still unread */
const WARM_UP_PODS = 50;
const WARM_UP_REQUESTS = 500;
/** requests sent one at a time before the measured ones, each on a pod of its own */
const SERIAL_REQUESTS = 200;
/** a round with more failed requests than this share fails the scenario */
const MAX_FAILED_SHARE = 0.02;
/** TokenRequest calls in flight while minting */
const MINT_CONCURRENCY = 16;
const NAMESPACE = 'bench';
const PATH = '/clusters/bench/assume-role-for-pod-identity';

const MODES = ['token-review', 'jwks-liveness'] as const;
type Mode = (typeof MODES)[number];

function clusterOf(mode: Mode, kube: KubeControlPlane): BenchCluster {
  return mode === 'token-review' ? { kubeconfig: kube.kubeconfigPath } : { kubeconfig: kube.kubeconfigPath, tokenReview: false };
}

interface NamedBuild extends Build {
  name: 'baseline' | 'current';
}

function builds(): NamedBuild[] {
  const current: NamedBuild = { name: 'current', ...CURRENT_BUILD };
  const cli = process.env.BENCH_BASELINE_CLI;
  if (!cli) return [current];
  return [{ name: 'baseline', cli: resolve(cli), node: process.env.BENCH_BASELINE_NODE || CURRENT_BUILD.node }, current];
}

function nodeVersion(node: string): string {
  return execFileSync(node, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '');
}

interface PodRef {
  name: string;
  uid: string;
  serviceAccount: string;
}

async function createPods(kube: KubeControlPlane, prefix: string, count: number): Promise<PodRef[]> {
  const pods: PodRef[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const serviceAccount = `sa-${i % SERVICE_ACCOUNTS}`;
        const pod: V1Pod = await createPod(kube, { namespace: NAMESPACE, name: `${prefix}-${i}`, serviceAccountName: serviceAccount });
        pods[i] = { name: pod.metadata!.name!, uid: pod.metadata!.uid!, serviceAccount };
      }
    }),
  );
  return pods;
}

/** One pod-bound token (TokenRequest, as the kubelet asks for the projected volume) per entry of `pods`, in order. */
async function mintTokens(kube: KubeControlPlane, pods: PodRef[]): Promise<string[]> {
  const tokens: string[] = new Array<string>(pods.length);
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: MINT_CONCURRENCY }, async () => {
      for (let i = next++; i < pods.length; i = next++) {
        const pod = pods[i]!;
        tokens[i] = (await requestPodToken(kube, { namespace: NAMESPACE, serviceAccount: pod.serviceAccount, podName: pod.name, podUid: pod.uid })).token;
        if (++done % 5000 === 0) progress(`kube-verify: ${done}/${pods.length} tokens`);
      }
    }),
  );
  return tokens;
}

/** A round's pods in request order: REQUESTS over PODS evenly, each pod's tokens next to each other, so pod reads spread over the round. */
function roundPods(pods: PodRef[]): PodRef[] {
  return Array.from({ length: REQUESTS }, (_, j) => pods[Math.floor((j * pods.length) / REQUESTS)]!);
}

interface Prepared {
  headers: Record<string, string>;
  body: string;
}

interface LoopResult {
  seconds: number;
  /** ms, every request */
  latencies: number[];
  failed: number;
  /** the first few failures, for the error message */
  failures: string[];
}

/** One request; resolves with its status and body (or the error as status 0). */
function send(agent: Agent, url: URL, item: Prepared): Promise<{ status: number; body: string }> {
  return new Promise((resolveSend) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: item.headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolveSend({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (error) => resolveSend({ status: 0, body: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', (error) => resolveSend({ status: 0, body: error.message }));
    req.end(item.body);
  });
}

function hasCredentials(body: string): boolean {
  try {
    const c = (JSON.parse(body) as { credentials?: Record<string, unknown> }).credentials;
    return typeof c?.accessKeyId === 'string' && typeof c.secretAccessKey === 'string' && typeof c.sessionToken === 'string' && typeof c.expiration === 'number';
  } catch {
    return false;
  }
}

/** Closed loop: `concurrency` keep-alive connections, each sending its next request when the last is answered, until every request is sent once. */
async function closedLoop(url: URL, requests: Prepared[], concurrency: number): Promise<LoopResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = new Array<number>(requests.length);
  const failures: string[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < requests.length; i = next++) {
        const sent = performance.now();
        const answer = await send(agent, url, requests[i]!);
        latencies[i] = performance.now() - sent;
        if (answer.status !== 200 || !hasCredentials(answer.body)) {
          failed++;
          if (failures.length < 5) failures.push(`${answer.status} ${answer.body.slice(0, 300)}`);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { seconds, latencies, failed, failures };
}

/** Sums of a Prometheus text exposition's samples whose labels include `labels`. */
function metricSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const set = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([key, value]) => set.includes(`${key}="${value}"`))) sum += Number(line.slice(close + 2));
  }
  return sum;
}

/** What the apiserver has counted so far: TokenReviews and pod GETs, with their total handling time (s). */
interface ApiserverCounts {
  reviews: number;
  reviewSeconds: number;
  podGets: number;
  podGetSeconds: number;
}

async function apiserverCounts(kube: KubeControlPlane): Promise<ApiserverCounts> {
  const res = await httpsJson<string>(`${kube.url}/metrics`, { ca: kube.caPem, token: kube.adminToken, accept: 'text/plain' });
  if (res.status !== 200) throw new Error(`kube-apiserver /metrics answered ${res.status}`);
  const review = { verb: 'POST', resource: 'tokenreviews' };
  const podGet = { verb: 'GET', resource: 'pods', subresource: '' };
  return {
    reviews: metricSum(res.text, 'apiserver_request_total', review),
    reviewSeconds: metricSum(res.text, 'apiserver_request_duration_seconds_sum', review),
    podGets: metricSum(res.text, 'apiserver_request_total', podGet),
    podGetSeconds: metricSum(res.text, 'apiserver_request_duration_seconds_sum', podGet),
  };
}

/** The server's own handling time of AssumeRoleForPodIdentity so far (s) and its count, from its /metrics; undefined when the build has no such metric. */
async function serverHandling(metricsUrl: string): Promise<{ seconds: number; count: number } | undefined> {
  const res = await fetch(new URL('/metrics', metricsUrl));
  const text = await res.text();
  const operation = { operation: 'AssumeRoleForPodIdentity' };
  const count = metricSum(text, 'pod_identity_api_request_duration_seconds_count', operation);
  return count > 0 ? { seconds: metricSum(text, 'pod_identity_api_request_duration_seconds_sum', operation), count } : undefined;
}

/** The machine's CPU time so far, all cores, in ms (/proc/stat, ticks of 10 ms): in total, busy (not idle), and stolen by the hypervisor. */
function machineMs(): { total: number; busy: number; steal: number } {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map((f) => Number(f) * 10) as [number, number, number, number, number, number, number, number];
  return { total: user + nice + system + idle + iowait + irq + softirq + steal, busy: user + nice + system + irq + softirq, steal };
}

/** One batch of requests against one server, with what every process involved spent on it. */
interface Phase {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  failed: number;
  failures: string[];
  /** server user+system CPU per request (µs), and its system (kernel) part */
  serverCpuMicros: number;
  serverSystemMicros: number;
  apiserverCpuMicros: number;
  etcdCpuMicros: number;
  /** this process's CPU per request (µs): the client, on the same 2 cores */
  loaderCpuMicros: number;
  reviews: number;
  podGets: number;
  /** the apiserver's mean handling time (ms) of a TokenReview / of a pod GET */
  reviewMs: number;
  podGetMs: number;
  /** the server's mean handling time of a request (ms), when its metrics say */
  serverHandlingMs: number;
  /** share of the machine's CPU time the hypervisor took meanwhile (steal) */
  steal: number;
  /** cores kept busy meanwhile by everything but the server, the apiserver, etcd and this process (another tenant of the machine) */
  othersCores: number;
}

async function measurePhase(kube: KubeControlPlane, server: BenchServer, requests: Prepared[], concurrency: number): Promise<Phase> {
  const pid = server.process.pid!;
  const cpuNow = () => ({ server: cpuMs(pid), system: cpuSplitMs(pid).system, apiserver: cpuMs(kube.apiserver.child.pid!), etcd: cpuMs(kube.etcd.child.pid!) });
  const [countsBefore, handlingBefore] = await Promise.all([apiserverCounts(kube), serverHandling(server.metricsUrl)]);
  const cpuBefore = cpuNow();
  const loaderBefore = process.cpuUsage();
  const machineBefore = machineMs();
  const loop = await closedLoop(new URL(PATH, server.apiUrl), requests, concurrency);
  const machineAfter = machineMs();
  const loader = process.cpuUsage(loaderBefore);
  const cpuAfter = cpuNow();
  const [countsAfter, handlingAfter] = await Promise.all([apiserverCounts(kube), serverHandling(server.metricsUrl)]);
  const n = requests.length;
  const perRequest = (key: keyof typeof cpuBefore) => ((cpuAfter[key] - cpuBefore[key]) * 1000) / n;
  const reviews = countsAfter.reviews - countsBefore.reviews;
  const podGets = countsAfter.podGets - countsBefore.podGets;
  const ours = cpuAfter.server - cpuBefore.server + cpuAfter.apiserver - cpuBefore.apiserver + cpuAfter.etcd - cpuBefore.etcd + (loader.user + loader.system) / 1000;
  return {
    requestsPerSecond: n / loop.seconds,
    p50: percentile(loop.latencies, 50),
    p99: percentile(loop.latencies, 99),
    failed: loop.failed,
    failures: loop.failures,
    serverCpuMicros: perRequest('server'),
    serverSystemMicros: perRequest('system'),
    apiserverCpuMicros: perRequest('apiserver'),
    etcdCpuMicros: perRequest('etcd'),
    loaderCpuMicros: (loader.user + loader.system) / n,
    reviews,
    podGets,
    reviewMs: reviews ? ((countsAfter.reviewSeconds - countsBefore.reviewSeconds) * 1000) / reviews : NaN,
    podGetMs: podGets ? ((countsAfter.podGetSeconds - countsBefore.podGetSeconds) * 1000) / podGets : NaN,
    serverHandlingMs: handlingBefore && handlingAfter ? ((handlingAfter.seconds - handlingBefore.seconds) * 1000) / (handlingAfter.count - handlingBefore.count) : NaN,
    steal: (machineAfter.steal - machineBefore.steal) / Math.max(1, machineAfter.total - machineBefore.total),
    othersCores: Math.max(0, machineAfter.busy - machineBefore.busy - ours) / (loop.seconds * 1000),
  };
}

interface Round {
  build: NamedBuild['name'];
  mode: Mode;
  /** CONCURRENCY in flight: the figures the targets compare */
  loaded: Phase;
  /** one request at a time, each on a pod of its own: the anatomy of one request without queueing */
  serial: Phase;
  serverRssMiB: number;
  loadAverage: number;
}

interface RoundTokens {
  loaded: string[];
  serial: string[];
  warmUp: string[];
}

async function measureRound(kube: KubeControlPlane, build: NamedBuild, mode: Mode, tokens: RoundTokens, serviceAccounts: string[]): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-kube-verify-'));
  const server = await startBenchServer(dir, clusterOf(mode, kube), nodeArgsFrom('BENCH_KUBE_SERVER_NODE_ARGS'), 1, build);
  try {
    await createAssociations(server.apiUrl, serviceAccounts);
    const url = new URL(PATH, server.apiUrl);
    const prepare = (list: string[]) => Promise.all(list.map((token) => signedAssumeRole(url, token)));
    const check = (phase: Phase | LoopResult, what: string, count: number, allowed: number) => {
      if (phase.failed > allowed) throw new Error(`kube-verify ${build.name} ${mode}: ${phase.failed} of ${count} ${what} requests failed, e.g.\n  ${phase.failures.join('\n  ')}`);
    };
    const warmUp = await closedLoop(url, await prepare(tokens.warmUp), CONCURRENCY);
    check(warmUp, 'warm-up', tokens.warmUp.length, 0);
    const serial = await measurePhase(kube, server, await prepare(tokens.serial), 1);
    check(serial, 'one-at-a-time', tokens.serial.length, MAX_FAILED_SHARE * tokens.serial.length);
    const loaded = await measurePhase(kube, server, await prepare(tokens.loaded), CONCURRENCY);
    check(loaded, 'measured', tokens.loaded.length, MAX_FAILED_SHARE * tokens.loaded.length);
    return { build: build.name, mode, loaded, serial, serverRssMiB: rssMiB(server.process.pid!), loadAverage: loadavg()[0]! };
  } finally {
    await stopProcess(server.process);
    rmSync(dir, { recursive: true, force: true });
  }
}

const median0 = <T>(items: T[], pick: (item: T) => number) => median(items.map(pick));
const list = <T>(items: T[], pick: (item: T) => number, digits = 0) => items.map((item) => round(pick(item), digits)).join(', ');
const ms = (value: number) => (Number.isNaN(value) ? '-' : round(value, 2));

function figuresOf(label: string, rounds: Round[]): Record<string, number | string> {
  const loaded = rounds.map((r) => r.loaded);
  const serial = rounds.map((r) => r.serial);
  const m = (pick: (p: Phase) => number) => median0(loaded, pick);
  const s = (pick: (p: Phase) => number) => median0(serial, pick);
  return {
    [`${label}: requests/s (median of rounds)`]: round(m((p) => p.requestsPerSecond), 0),
    [`${label}: p50 / p99 (ms, medians)`]: `${ms(m((p) => p.p50))} / ${ms(m((p) => p.p99))}`,
    [`${label}: server CPU per request (µs, median)`]: round(m((p) => p.serverCpuMicros), 0),
    [`${label}: each round: requests/s | server CPU per request (µs) | p99 (ms) | load average | cores busy with other work | CPU steal (%)`]:
      `${list(loaded, (p) => p.requestsPerSecond)} | ${list(loaded, (p) => p.serverCpuMicros)} | ${list(loaded, (p) => p.p99, 1)} | ${list(rounds, (r) => r.loadAverage, 2)} | ${list(loaded, (p) => p.othersCores, 2)} | ${list(loaded, (p) => 100 * p.steal)}`,
    [`${label}: server CPU per request in the kernel (µs, median)`]: round(m((p) => p.serverSystemMicros), 0),
    [`${label}: kube-apiserver / etcd / load generator CPU per request (µs, medians)`]: `${round(m((p) => p.apiserverCpuMicros), 0)} / ${round(m((p) => p.etcdCpuMicros), 0)} / ${round(m((p) => p.loaderCpuMicros), 0)}`,
    [`${label}: server's mean handling time / apiserver's mean TokenReview / pod GET (ms, medians)`]: `${ms(m((p) => p.serverHandlingMs))} / ${ms(m((p) => p.reviewMs))} / ${ms(m((p) => p.podGetMs))}`,
    [`${label}: TokenReviews / pod GETs the apiserver served per round (median)`]: `${m((p) => p.reviews)} / ${m((p) => p.podGets)}`,
    [`${label}, one at a time: p50 / p99 (ms) | server's handling / apiserver's TokenReview / pod GET (ms) | server / kube-apiserver CPU per request (µs), medians`]:
      `${ms(s((p) => p.p50))} / ${ms(s((p) => p.p99))} | ${ms(s((p) => p.serverHandlingMs))} / ${ms(s((p) => p.reviewMs))} / ${ms(s((p) => p.podGetMs))} | ${round(s((p) => p.serverCpuMicros), 0)} / ${round(s((p) => p.apiserverCpuMicros), 0)}`,
    [`${label}: server RSS after the round (MiB, median)`]: round(median0(rounds, (r) => r.serverRssMiB), 0),
  };
}

export async function run(): Promise<ScenarioResult> {
  const buildList = builds();
  const loadAtStart = loadavg()[0]!;
  progress(`kube-verify: builds ${buildList.map((b) => `${b.name} (${b.cli} on ${b.node})`).join(', ')}`);
  progress('kube-verify: starting etcd and kube-apiserver');
  const kube = await startKubeControlPlane();
  try {
    const serviceAccounts = Array.from({ length: SERVICE_ACCOUNTS }, (_, i) => `sa-${i}`);
    await createNamespace(kube, NAMESPACE);
    for (const name of serviceAccounts) await createServiceAccount(kube, NAMESPACE, name);
    progress(`kube-verify: creating ${PODS} pods, ${SERIAL_REQUESTS} pods for the one-at-a-time requests and ${WARM_UP_PODS} warm-up pods`);
    const pods = await createPods(kube, 'pod', PODS);
    const serialPods = await createPods(kube, 'single', SERIAL_REQUESTS);
    const warmUpPods = await createPods(kube, 'warm', WARM_UP_PODS);

    // Every round gets its own tokens (the apiserver's token cache remembers
    // an authenticated token for 10 s: a reused one would be answered from it).
    // The warm-up tokens are shared: they only warm a fresh server up.
    const slots = ROUNDS * buildList.length * MODES.length;
    const perSlot = REQUESTS + SERIAL_REQUESTS;
    const warmUpPlan = Array.from({ length: WARM_UP_REQUESTS }, (_, j) => warmUpPods[j % WARM_UP_PODS]!);
    const slotPlan = [...roundPods(pods), ...serialPods];
    const plan = [...warmUpPlan, ...Array.from({ length: slots }, () => slotPlan).flat()];
    progress(`kube-verify: minting ${plan.length} pod-bound tokens (TokenRequest, ${MINT_CONCURRENCY} in flight)`);
    const minting = performance.now();
    const minted = await mintTokens(kube, plan);
    const mintSeconds = (performance.now() - minting) / 1000;
    const warmUp = minted.slice(0, WARM_UP_REQUESTS);
    let slot = 0;
    const nextTokens = (): RoundTokens => {
      const from = WARM_UP_REQUESTS + perSlot * slot++;
      return { loaded: minted.slice(from, from + REQUESTS), serial: minted.slice(from + REQUESTS, from + perSlot), warmUp };
    };

    const rounds: Round[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      for (const mode of MODES) {
        for (const build of buildList) {
          progress(`kube-verify: round ${i}/${ROUNDS}, ${mode}, ${build.name}: ${SERIAL_REQUESTS} requests one at a time, then ${REQUESTS} with ${CONCURRENCY} in flight`);
          const r = await measureRound(kube, build, mode, nextTokens(), serviceAccounts);
          const { loaded, serial } = r;
          progress(
            `kube-verify:   ${round(loaded.requestsPerSecond, 0)} req/s, p50 ${ms(loaded.p50)} ms, p99 ${ms(loaded.p99)} ms, server ${round(loaded.serverCpuMicros, 0)} µs CPU per request, ` +
              `${loaded.reviews} TokenReviews, ${loaded.podGets} pod GETs; one at a time p50 ${ms(serial.p50)} ms; load ${round(r.loadAverage, 2)}, other work ${round(loaded.othersCores, 2)} cores, steal ${round(100 * loaded.steal, 0)} %`,
          );
          rounds.push(r);
        }
      }
    }

    const of = (build: string, mode: Mode) => rounds.filter((r) => r.build === build && r.mode === mode);
    const figures: Record<string, number | string> = {};
    const targets: Target[] = [];
    for (const mode of MODES) {
      for (const build of buildList) Object.assign(figures, figuresOf(buildList.length > 1 ? `${mode}, ${build.name}` : mode, of(build.name, mode)));
      if (buildList.length > 1) {
        const ratio = (pick: (p: Phase) => number) => median0(of('current', mode), (r) => pick(r.loaded)) / median0(of('baseline', mode), (r) => pick(r.loaded));
        const cpuRatio = ratio((p) => p.serverCpuMicros);
        const rpsRatio = ratio((p) => p.requestsPerSecond);
        figures[`${mode}: current / baseline, server CPU per request (medians)`] = round(cpuRatio, 3);
        figures[`${mode}: current / baseline, requests/s (medians)`] = round(rpsRatio, 3);
        // each current round against the baseline round just before it: slow drifts of the machine cancel out
        const pairs = (pick: (p: Phase) => number) => of('current', mode).map((r, i) => round(pick(r.loaded) / pick(of('baseline', mode)[i]!.loaded), 2)).join(', ');
        figures[`${mode}: current / baseline of each pair of rounds: server CPU per request | requests/s`] = `${pairs((p) => p.serverCpuMicros)} | ${pairs((p) => p.requestsPerSecond)}`;
        targets.push(atMost(`${mode}: server CPU per request, current / baseline`, cpuRatio, 1.1), atLeast(`${mode}: requests/s, current / baseline`, rpsRatio, 0.9));
      }
    }
    const failed = rounds.reduce((n, r) => n + r.loaded.failed + r.serial.failed, 0);
    figures['failed requests (not 200 with credentials), all rounds'] = failed;
    figures['tokens minted (TokenRequest) / per second'] = `${minted.length} / ${round(minted.length / mintSeconds, 0)}`;
    figures['load average (1 min) at start / end'] = `${round(loadAtStart, 2)} / ${round(loadavg()[0]!, 2)}`;

    const busiest = Math.max(...rounds.map((r) => r.loaded.othersCores));
    const jwks = rounds.filter((r) => r.mode === 'jwks-liveness');
    const reviewed = rounds.filter((r) => r.mode === 'token-review');
    const described = buildList.map((b) => `${b.name}: ${b.name === 'current' ? 'this checkout' : 'BENCH_BASELINE_CLI'} on Node ${nodeVersion(b.node)}`);
    return {
      scenario: 'kube-verify',
      description:
        `AssumeRoleForPodIdentity with never-seen pod-bound tokens the server verifies through a real kube-apiserver (token-review: TokenReview; jwks-liveness: the apiserver's JWKS plus a pod GET per pod): ` +
        `${REQUESTS} requests per round with ${CONCURRENCY} in flight, ${ROUNDS} round(s) per build and mode${buildList.length > 1 ? ', baseline and current alternating' : ''}`,
      figures,
      targets,
      notes: [
        `Builds: ${described.join('; ')}.`,
        `Each round is a fresh server process (workers: 1, SQLite, local issuer, audit log at info) with ${SERVICE_ACCOUNTS} associations, warmed up with ${WARM_UP_REQUESTS} requests on tokens of ${WARM_UP_PODS} separate pods; then ${SERIAL_REQUESTS} requests one at a time, each on a pod of its own (the anatomy of one request, no queueing); then the measured ${REQUESTS} requests, in a closed loop of ${CONCURRENCY} keep-alive connections, on tokens spread evenly over ${PODS} other pods. Every token is its own TokenRequest (audience pods.eks.amazonaws.com, bound to its pod, RS256), used once; latency is from write to last byte.`,
        'CPU per request is user+system time from /proc over the measured requests divided by their number, for the server, the kube-apiserver and etcd; the load generator (this process) shares the 2 cores. "Cores busy with other work" is the machine\'s busy time (/proc/stat) over the round less all of those, per second of the round: another tenant of the VM. Handling times come from the server\'s and the apiserver\'s own request-duration metrics.',
        `Pod reads in the measured requests: in jwks-liveness mode the apiserver served ${list(jwks, (r) => r.loaded.podGets)} pod GETs per round (the pods' alive answers last 20 s and every round starts a fresh server, so each pod is read once), ${round(median0(jwks, (r) => r.loaded.podGets) / REQUESTS, 2)} per request; TokenReviews in the token-review rounds: ${list(reviewed, (r) => r.loaded.reviews)} (one per request).`,
        'Throughput and latency move with whatever else runs on the 2 cores (load average per round above); CPU per request moves least. The server, the apiserver and the client share the machine, so a change of the server\'s cost moves throughput by less than its own share.',
        busiest > 0.5
          ? `Other work took up to ${round(busiest, 2)} cores during a round: the throughput figures (and, less, CPU per request) of this run are the machine's; compare the pairs of rounds, or run again when it is quieter.`
          : `Other work took at most ${round(busiest, 2)} cores during any round.`,
      ],
    };
  } finally {
    await kube.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
