// AssumeRoleForPodIdentity under load: the built server as its own process
// (local issuer, JWKS-file verification, SQLite store, audit to the log),
// driven by autocannon with SigV4-signed requests, in two shapes:
//   - repeated tokens: 500 pods whose tokens come back again and again (the
//     agent's refreshes, SDK retries) — the verified-token cache answers;
//   - unique tokens: every request carries a token never seen before, so each
//     one is signature-verified (RS256, node:crypto.verify) — the worst case.
// Run: npm run build && node --import tsx bench/assume-role.ts
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from '../test/helpers/server-process.js';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import { signRequest } from '../src/lib/sigv4.js';
import { atLeast, below, progress, round, type ScenarioResult } from './lib/report.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const UNIQUE_POOL = Number(process.env.BENCH_UNIQUE_TOKENS ?? 36_000);
const SERVICE_ACCOUNTS = 50;
const PODS = 500;
const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const ADMIN = { accessKeyId: 'AKIABENCHADMIN', secretAccessKey: 'bench-admin-secret' };
const NODE = { accessKeyId: 'AKIABENCHNODE', secretAccessKey: 'bench-node-secret' };


/** RS256 signing with node:crypto: thousands of tokens in seconds, in the exact projected-token format. */
function tokenMinter() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid })).toString('base64url');
  return {
    jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] },
    mint(pod: number): string {
      const now = Math.floor(Date.now() / 1000);
      const sa = `sa-${pod % SERVICE_ACCOUNTS}`;
      const payload = {
        aud: ['pods.eks.amazonaws.com'],
        exp: now + 86400,
        iat: now,
        nbf: now,
        iss: ISSUER,
        jti: randomUUID(),
        sub: `system:serviceaccount:bench:${sa}`,
        'kubernetes.io': {
          namespace: 'bench',
          node: { name: `node-${pod % 20}`, uid: randomUUID() },
          pod: { name: `${sa}-pod-${pod}`, uid: randomUUID() },
          serviceaccount: { name: sa, uid: randomUUID() },
        },
      };
      const input = `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
      return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    },
  };
}

/** CPU seconds (user + system) a process used so far, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

interface Prepared {
  headers: Record<string, string>;
  body: string;
}

async function prepare(apiUrl: string, token: string): Promise<Prepared> {
  const url = new URL('/clusters/bench/assume-role-for-pod-identity', apiUrl);
  const body = JSON.stringify({ token });
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' });
  return { headers, body };
}

interface LoadResult {
  requestsPerSecond: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  sent: number;
  /** server CPU time per answered request: independent of what else runs on the machine */
  serverCpuMicros: number;
  /** the load generator's (this process's) CPU time per answered request: what it leaves the server of the 2 cores */
  loaderCpuMicros: number;
}

async function load(apiUrl: string, pool: Prepared[], serverPid: number): Promise<LoadResult> {
  let next = 0;
  const cpuBefore = cpuSeconds(serverPid);
  const loaderBefore = process.cpuUsage();
  const result = await autocannon({
    url: apiUrl,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: [
      {
        method: 'POST',
        path: '/clusters/bench/assume-role-for-pod-identity',
        setupRequest: (req) => {
          const item = pool[next++ % pool.length]!;
          return { ...req, headers: item.headers, body: item.body };
        },
      },
    ],
  });
  const answered = result.requests.total;
  const loader = process.cpuUsage(loaderBefore);
  return {
    serverCpuMicros: ((cpuSeconds(serverPid) - cpuBefore) / answered) * 1e6,
    loaderCpuMicros: (loader.user + loader.system) / answered,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    sent: next,
  };
}

export async function run(): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-assume-role-'));
  const minter = tokenMinter();
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(minter.jwks));
  const [apiPort, webhookPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const config = {
    listen: `127.0.0.1:${apiPort}`,
    webhookListen: `127.0.0.1:${webhookPort}`,
    metricsListen: `127.0.0.1:${metricsPort}`,
    dataDir: join(dir, 'data'),
    logLevel: 'info',
    admins: [ADMIN],
    nodes: [NODE],
    clusters: [{ name: 'bench', issuer: ISSUER, jwksFile: join(dir, 'jwks.json') }],
    issuer: { type: 'local' },
  };
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  // Audit records go to the log at info level, as in production; the log goes to /dev/null.
  // BENCH_SERVER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the server.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, resolve(process.env.BENCH_CLI ?? 'dist/cli/main.js'), 'server', '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'ignore', 'ignore'] });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  try {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const ok = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    progress(`assume-role: creating ${SERVICE_ACCOUNTS} associations`);
    for (let i = 0; i < SERVICE_ACCOUNTS; i++) {
      const url = new URL('/clusters/bench/pod-identity-associations', apiUrl);
      const body = JSON.stringify({ namespace: 'bench', serviceAccount: `sa-${i}`, roleArn: `arn:aws:iam::111122223333:role/bench-${i}` });
      const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' });
      const res = await fetch(url, { method: 'POST', headers, body });
      if (res.status !== 200) throw new Error(`create association: ${res.status} ${await res.text()}`);
    }

    progress(`assume-role: repeated tokens (${PODS} pods), ${CONNECTIONS} connections, ${SECONDS} s`);
    const repeated = await Promise.all(Array.from({ length: PODS }, (_, pod) => prepare(apiUrl, minter.mint(pod))));
    await load(apiUrl, repeated.slice(0, 50), child.pid!); // warm-up: JIT, SQLite pages
    const warm = await load(apiUrl, repeated, child.pid!);

    progress(`assume-role: minting ${UNIQUE_POOL} unique tokens`);
    const unique: Prepared[] = [];
    for (let i = 0; i < UNIQUE_POOL; i++) unique.push(await prepare(apiUrl, minter.mint(PODS + i)));
    progress(`assume-role: unique tokens, ${CONNECTIONS} connections, ${SECONDS} s`);
    const cold = await load(apiUrl, unique, child.pid!);

    const figure = (r: LoadResult, label: string) => ({
      [`${label}: requests/s`]: round(r.requestsPerSecond, 0),
      [`${label}: p50 (ms)`]: r.p50,
      [`${label}: p90 (ms)`]: r.p90,
      [`${label}: p99 (ms)`]: r.p99,
      [`${label}: max (ms)`]: r.max,
      [`${label}: non-2xx`]: r.non2xx,
      [`${label}: errors`]: r.errors,
      [`${label}: server CPU per request (µs)`]: round(r.serverCpuMicros, 0),
      [`${label}: load generator CPU per request (µs)`]: round(r.loaderCpuMicros, 0),
    });
    return {
      scenario: 'assume-role',
      description: `AssumeRoleForPodIdentity, local issuer, RS256 JWKS-file verification, ${CONNECTIONS} keep-alive connections, ${SECONDS} s per shape, autocannon in the same 2-core machine`,
      figures: {
        ...figure(warm, 'repeated tokens'),
        ...figure(cold, 'unique tokens'),
        'unique tokens sent': cold.sent,
        'unique token pool': UNIQUE_POOL,
        'load average at the end (1 min)': round(loadavg()[0]!, 2),
      },
      targets: [
        atLeast('repeated tokens: requests/s', warm.requestsPerSecond, 3000),
        below('repeated tokens: p99 (ms)', warm.p99, 20),
        atLeast('unique tokens: requests/s', cold.requestsPerSecond, 3000),
        below('unique tokens: p99 (ms)', cold.p99, 20),
        below('non-2xx answers', warm.non2xx + cold.non2xx + warm.errors + cold.errors, 1),
      ],
      notes: [
        'Every request is SigV4-verified (eks-auth), parsed, token-verified, node-checked, resolved against the store, issued and audited (pino, info).',
        cold.sent > UNIQUE_POOL ? `the unique-token pool was cycled (${cold.sent} requests for ${UNIQUE_POOL} tokens): later rounds hit the cache` : 'no unique token was sent twice',
      ],
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
