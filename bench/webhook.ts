// Admission webhook under load: a real `pod-identity server` process with
// 10,000 associations in its store, driven over HTTPS (keep-alive, as the API
// server calls webhooks) at a steady 500 reviews/s, half of them for
// associated service accounts (mutated) and half not (skipped).
//
// The fixed-rate run uses a paced open-loop client written here: one review
// every 2 ms, latency counted from the moment it was due (so a stall is not
// hidden by sending later). autocannon's `overallRate` is not used for it:
// it sends each connection's quota for the second back to back and then
// idles, and its coordinated-omission correction assumes a 1 ms interval, so
// its percentiles at a fixed rate describe bursts, not the rate. autocannon
// does measure the ceiling (no rate limit), where neither matters.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createRequire } from 'node:module';
import { freePort } from '../test/helpers/server-process.js';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AssociationService } from '../src/associations/service.js';
import { SqliteAssociationStore } from '../src/associations/stores/sqlite.js';
import { cpuMs, startCeilingServer, stopProcess } from './lib/processes.js';
import { below, percentile, progress, round, type ScenarioResult } from './lib/report.js';
import { writeUnusedJwks } from './lib/tokens.js';

const ASSOCIATIONS = Number(process.env.BENCH_WEBHOOK_ASSOCIATIONS ?? 10_000);
const RATE = Number(process.env.BENCH_WEBHOOK_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 30);
const CONNECTIONS = 10;

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p90: number; p99: number; max: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;


/** A typical application pod: two containers, some env, a config volume; about 2 KB of JSON. */
function reviewBody(uid: string, namespace: string, serviceAccount: string): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'web-7d9f8c-', namespace, labels: { app: 'web', 'pod-template-hash': '7d9f8c' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f8c', uid: '5f0b0f43-0a36-4e0e-9a59-2b36d1c0e111', controller: true }] },
        spec: {
          serviceAccountName: serviceAccount,
          containers: [
            {
              name: 'web',
              image: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/web:1.4.2',
              ports: [{ containerPort: 8080, protocol: 'TCP' }],
              env: [{ name: 'LOG_LEVEL', value: 'info' }, { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } },
              volumeMounts: [{ name: 'config', mountPath: '/etc/web' }, { name: 'kube-api-access-x1y2z', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
            },
            { name: 'envoy', image: 'envoyproxy/envoy:v1.30.1', args: ['-c', '/etc/envoy/envoy.yaml'], resources: { requests: { cpu: '100m', memory: '64Mi' } } },
          ],
          volumes: [
            { name: 'config', configMap: { name: 'web-config' } },
            { name: 'kube-api-access-x1y2z', projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] } },
          ],
          restartPolicy: 'Always',
          dnsPolicy: 'ClusterFirst',
          schedulerName: 'default-scheduler',
          tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
        },
      },
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  });
}

interface RawRequest {
  body: string;
}

interface PacedResult {
  /** ms from the moment each review was due to its answer */
  latencies: number[];
  failures: number;
  /** reviews answered per second of wall time */
  achievedRate: number;
  /** TLS connections the client opened (each one a handshake on the server) */
  connectionsOpened: number;
}

/** Open loop: review i is due at start + i / rate, whatever happened before it. */
async function paced(url: string, ca: string, requests: RawRequest[], rate: number, seconds: number, connections: number): Promise<PacedResult> {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: connections, ca });
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const latencies: number[] = [];
  let failures = 0;
  let sent = 0;
  let settled = 0;
  const sockets = new WeakSet<object>();
  let connectionsOpened = 0;
  const start = performance.now();
  await new Promise<void>((resolveRun) => {
    const send = (i: number) => {
      const due = start + i * interval;
      const { body } = requests[i % requests.length]!;
      const req = request(
        { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(performance.now() - due);
            if (res.statusCode !== 200) failures++;
            if (++settled === total) resolveRun();
          });
        },
      );
      req.on('socket', (socket) => {
        if (sockets.has(socket)) return;
        sockets.add(socket);
        connectionsOpened++;
      });
      req.on('error', () => {
        failures++;
        if (++settled === total) resolveRun();
      });
      req.end(body);
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) send(sent++);
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  return { latencies, failures, achievedRate: total / elapsed, connectionsOpened };
}

/** Server-side view: the admission latency histogram's cumulative counts, summed over outcomes. */
async function serverHistogram(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const buckets = new Map<string, number>();
  for (const m of text.matchAll(/^pod_identity_webhook_admission_duration_seconds_bucket\{le="([^"]+)",outcome="[^"]+"\} (\d+)$/gm)) {
    buckets.set(m[1]!, (buckets.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return buckets;
}

/** One review's answer (raw bytes), so the load below measures real decisions and the ceiling answers the same bytes. */
function answerOf(url: string, ca: string, body: string): Promise<{ patch?: string; bytes: Buffer }> {
  return new Promise((resolveAnswer, reject) => {
    const req = request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolveAnswer({ ...(JSON.parse(bytes.toString()) as { response: { patch?: string } }).response, bytes });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function startServer(dir: string): Promise<{ child: ChildProcess; url: string; ca: string; metricsUrl: string }> {
  const [api, webhook, metrics] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `dataDir: ${join(dir, 'data')}`,
      `listen: 127.0.0.1:${api}`,
      `webhookListen: 127.0.0.1:${webhook}`,
      `metricsListen: 127.0.0.1:${metrics}`,
      'logLevel: warn',
      `clusters: [{ name: bench, jwksFile: ${writeUnusedJwks(join(dir, 'jwks.json'))} }]`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [resolve('dist/cli/main.js'), 'server', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${log}`);
    try {
      if ((await fetch(`http://127.0.0.1:${metrics}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    url: `https://127.0.0.1:${webhook}/mutate`,
    ca: readFileSync(join(dir, 'data', 'webhook-tls', 'ca.crt'), 'utf8'),
    metricsUrl: `http://127.0.0.1:${metrics}`,
  };
}

export async function run(): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhook-'));
  let child: ChildProcess | undefined;
  let ceiling: ChildProcess | undefined;
  try {
    progress(`webhook: storing ${ASSOCIATIONS} associations`);
    const store = new SqliteAssociationStore(join(dir, 'data', 'associations.db'));
    const service = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => ['bench'] });
    for (let i = 0; i < ASSOCIATIONS; i++) {
      await service.create('bench', { namespace: `ns-${i % 100}`, serviceAccount: `sa-${i}`, roleArn: 'arn:aws:iam::111122223333:role/r' }, { actor: { kind: 'access-key', accessKeyId: 'bench' } });
    }
    await store.close();

    const server = await startServer(dir);
    child = server.child;
    // Half the reviews hit an association, half do not; spread over many subjects.
    const requests = Array.from({ length: 200 }, (_, i) => {
      const n = (i * 37) % ASSOCIATIONS;
      const serviceAccount = i % 2 === 0 ? `sa-${n}` : `unassociated-${n}`;
      return { method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json' }, body: reviewBody(`uid-${i}`, `ns-${n % 100}`, serviceAccount) };
    });

    const mutated = await answerOf(server.url, server.ca, requests[0]!.body);
    if (!mutated.patch) throw new Error('an associated review got no patch');
    if ((await answerOf(server.url, server.ca, requests[1]!.body)).patch) throw new Error('an unassociated review got a patch');
    const ceilingPort = await freePort();
    const tlsDir = join(dir, 'data', 'webhook-tls');
    ceiling = await startCeilingServer(ceilingPort, mutated.bytes, { tls: { keyFile: join(tlsDir, 'tls.key'), certFile: join(tlsDir, 'tls.crt') } });
    const ceilingUrl = `https://127.0.0.1:${ceilingPort}/mutate`;

    progress('webhook: warm-up, 5 s each (ceiling, then server)');
    await paced(ceilingUrl, server.ca, requests, RATE, 5, CONNECTIONS);
    await paced(server.url, server.ca, requests, RATE, 5, CONNECTIONS);
    progress(`webhook: ceiling (bare node:https answering the same bytes) at ${RATE} reviews/s for ${SECONDS} s`);
    const ceilingFixed = await paced(ceilingUrl, server.ca, requests, RATE, SECONDS, CONNECTIONS);
    const before = await serverHistogram(server.metricsUrl);
    const cpuBefore = cpuMs(child.pid!);
    progress(`webhook: ${RATE} reviews/s for ${SECONDS} s (paced, open loop)`);
    const fixed = await paced(server.url, server.ca, requests, RATE, SECONDS, CONNECTIONS);
    const cpuPerReview = (cpuMs(child.pid!) - cpuBefore) / fixed.latencies.length;
    const afterRun = await serverHistogram(server.metricsUrl);
    const inServer = (le: string) => (afterRun.get(le) ?? 0) - (before.get(le) ?? 0);
    const withinServer = (le: string) => round((100 * inServer(le)) / inServer('+Inf'), 2);
    const load = loadavg()[0]!;
    progress('webhook: capacity, no rate limit, 10 s each (ceiling, then server; autocannon)');
    const ceilingOpen = await autocannon({ url: ceilingUrl, connections: CONNECTIONS, requests, tlsOptions: { ca: server.ca }, duration: 10 });
    const open = await autocannon({ url: server.url, connections: CONNECTIONS, requests, tlsOptions: { ca: server.ca }, duration: 10 });

    const p99 = percentile(fixed.latencies, 99);
    return {
      scenario: 'webhook',
      description: `admission reviews over HTTPS against \`pod-identity server\` (SQLite, ${ASSOCIATIONS.toLocaleString('en')} associations), half mutated, half skipped`,
      figures: {
        'rate asked (reviews/s)': RATE,
        'rate achieved (reviews/s)': round(fixed.achievedRate, 1),
        'reviews answered': fixed.latencies.length,
        'p50 (ms)': round(percentile(fixed.latencies, 50), 2),
        'p90 (ms)': round(percentile(fixed.latencies, 90), 2),
        'p99 (ms)': round(p99, 2),
        'p99.9 (ms)': round(percentile(fixed.latencies, 99.9), 2),
        'max (ms)': round(Math.max(...fixed.latencies), 2),
        'failed (non-200 or errors)': fixed.failures,
        'TLS connections opened': fixed.connectionsOpened,
        'server CPU per review (µs)': round(cpuPerReview * 1000, 0),
        'in-server: answered within 1 ms (%)': withinServer('0.001'),
        'in-server: answered within 5 ms (%)': withinServer('0.005'),
        'ceiling p50 / p99 at the same rate (ms)': `${round(percentile(ceilingFixed.latencies, 50), 2)} / ${round(percentile(ceilingFixed.latencies, 99), 2)}`,
        'capacity (reviews/s, 10 connections)': round(open.requests.average, 0),
        'capacity p99 (ms)': open.latency.p99,
        'ceiling capacity (reviews/s, bare node:https)': round(ceilingOpen.requests.average, 0),
        'server / ceiling capacity (%)': round((100 * open.requests.average) / ceilingOpen.requests.average, 1),
        'load average (1 min) at the end of the fixed-rate run': round(load, 2),
      },
      targets: [below('p99 at 500 reviews/s (ms)', p99, 5), below('failed reviews', fixed.failures + open.non2xx + open.errors, 1)],
      notes: [
        `Fixed rate: paced open-loop client, up to ${CONNECTIONS} keep-alive TLS connections, latency from each review's due time; each review carries a ~2 KB two-container pod.`,
        'In-server figures come from pod_identity_webhook_admission_duration_seconds (read → decide → answer written), the client figures add TLS, loopback and client scheduling.',
        'The decision is one indexed SQLite read per review; the service-account lookup is not exercised (no kubeconfig).',
      ],
    };
  } finally {
    await stopProcess(ceiling);
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
