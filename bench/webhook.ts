// Admission webhook under load: a real `pod-identity server` process with
// 10,000 associations in its store, driven over HTTPS (keep-alive, as the API
// server calls webhooks) by autocannon at a fixed 500 reviews/s, half of them
// for associated service accounts (mutated) and half not (skipped). Latency is
// measured by the client, corrected for coordinated omission. Then the same
// mix without a rate limit, for the ceiling.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AssociationService } from '../src/associations/service.js';
import { SqliteAssociationStore } from '../src/associations/stores/sqlite.js';
import { below, progress, round, type ScenarioResult } from './lib/report.js';

const ASSOCIATIONS = Number(process.env.BENCH_WEBHOOK_ASSOCIATIONS ?? 10_000);
const RATE = Number(process.env.BENCH_WEBHOOK_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 30);
const CONNECTIONS = 10;

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p90: number; p99: number; p99_9?: number; max: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

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

async function startServer(dir: string): Promise<{ child: ChildProcess; url: string; ca: string }> {
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
      'clusters: [{ name: bench, jwksFile: /dev/null }]',
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
  return { child, url: `https://127.0.0.1:${webhook}/mutate`, ca: readFileSync(join(dir, 'data', 'webhook-tls', 'ca.crt'), 'utf8') };
}

export async function run(): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhook-'));
  let child: ChildProcess | undefined;
  try {
    progress(`webhook: storing ${ASSOCIATIONS} associations`);
    const store = new SqliteAssociationStore(join(dir, 'data', 'associations.db'));
    const service = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => ['bench'] });
    for (let i = 0; i < ASSOCIATIONS; i++) {
      await service.create('bench', { namespace: `ns-${i % 100}`, serviceAccount: `sa-${i}`, roleArn: 'arn:aws:iam::111122223333:role/r' });
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
    const base = { url: server.url, connections: CONNECTIONS, requests, tlsOptions: { ca: server.ca } };

    progress('webhook: warm-up, 5 s');
    await autocannon({ ...base, duration: 5, overallRate: RATE });
    progress(`webhook: ${RATE} reviews/s for ${SECONDS} s`);
    const fixed = await autocannon({ ...base, duration: SECONDS, overallRate: RATE });
    progress('webhook: no rate limit, 10 s (ceiling)');
    const open = await autocannon({ ...base, duration: 10 });

    const failures = fixed.non2xx + fixed.errors + fixed.timeouts;
    return {
      scenario: 'webhook',
      description: `admission reviews over HTTPS against \`pod-identity server\` (SQLite, ${ASSOCIATIONS.toLocaleString('en')} associations), half mutated, half skipped`,
      figures: {
        'rate (reviews/s)': RATE,
        'reviews answered': fixed.requests.total,
        'p50 (ms)': fixed.latency.p50,
        'p90 (ms)': fixed.latency.p90,
        'p99 (ms)': fixed.latency.p99,
        'max (ms)': fixed.latency.max,
        'failed (non-2xx, errors, timeouts)': failures,
        'ceiling (reviews/s, 10 connections)': round(open.requests.average, 0),
        'ceiling p99 (ms)': open.latency.p99,
      },
      targets: [below('p99 at 500 reviews/s (ms)', fixed.latency.p99, 5), below('failed reviews', failures, 1)],
      notes: [
        `autocannon ${CONNECTIONS} keep-alive TLS connections, latency corrected for coordinated omission; each review carries a ~2 KB two-container pod.`,
        'The decision is one indexed SQLite read per review; the service-account lookup is not exercised (no kubeconfig).',
      ],
    };
  } finally {
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
