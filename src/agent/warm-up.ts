// The agent's warm-up before it says it has started. A node's pods start
// with it, and a cold agent ran its first second's requests through V8's
// interpreter: each cost several times what it costs later, so a burst of new
// pods queued (the storm's first second had a 2 s tail, the rest under
// 120 ms). Warm-up runs the whole cold-request path a few hundred times on
// loopback, against a stand-in EKS Auth in this process: the credentials
// handler on a throwaway listener, the cache, the SigV4 signer, the HTTP
// client and the answer's decoding and encoding. Nothing leaves the process
// and nothing is kept: the stand-in, its cache and its listener are closed.
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { http } from '../lib/node-http.js';
import { CredentialCache } from './cache.js';
import type { CredentialSource, IssuedCredentials } from './credentials.js';
import { EksAuthUpstream } from './upstream.js';

/** Cold requests run at warm-up: enough for V8 to optimise the hot functions. */
const WARM_UP_REQUESTS = 200;
const CONCURRENCY = 16;

const STAND_IN_ANSWER = JSON.stringify({
  subject: { namespace: 'warm-up', serviceAccount: 'warm-up' },
  audience: 'pods.eks.amazonaws.com',
  podIdentityAssociation: { associationArn: 'arn:aws:eks:us-east-1:000000000000:podidentityassociation/warm-up/a-warmup', associationId: 'a-warmup' },
  assumedRoleUser: { arn: 'arn:aws:sts::000000000000:assumed-role/warm-up/warm-up', assumeRoleId: 'AROAWARMUP:warm-up' },
  credentials: { accessKeyId: 'ASIAWARMUP', secretAccessKey: 'warm-up', sessionToken: 'warm-up'.repeat(100), expiration: Math.floor(Date.now() / 1000) + 3600 },
});

/** A JWT-shaped token the agent's own checks accept (it verifies no signature), distinct per `i`. */
function standInToken(i: number): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'RS256', kid: 'warm-up' })}.${part({ sub: 'system:serviceaccount:warm-up:warm-up', exp: now + 3600, iat: now, jti: `warm-up-${i}` })}.${'c2ln'.repeat(64)}`;
}

function listenOnLoopback(server: ReturnType<typeof http.createServer>): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function get(port: number, token: string, agent: InstanceType<typeof http.Agent>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/v1/credentials', headers: { authorization: token }, agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
  });
}

/**
 * Runs WARM_UP_REQUESTS distinct cold requests through a handler made by
 * `handlerFor` (the agent's own, for a source and the Host values it
 * accepts), backed by a cache over a real EksAuthUpstream to a stand-in.
 */
export async function warmUp(handlerFor: (source: CredentialSource<IssuedCredentials>, allowedHosts: ReadonlySet<string>) => RequestListener): Promise<void> {
  const standIn = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(STAND_IN_ANSWER) });
      res.end(STAND_IN_ANSWER);
    });
  });
  const allowedHosts = new Set<string>();
  let upstream: EksAuthUpstream | undefined;
  let cache: CredentialCache<IssuedCredentials> | undefined;
  const listener = http.createServer((req, res) => handler(req, res));
  let handler: RequestListener = (_req, res) => res.end();
  const client = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    const standInPort = await listenOnLoopback(standIn);
    upstream = new EksAuthUpstream({
      endpoint: `http://127.0.0.1:${standInPort}`,
      allowInsecureHttp: true,
      clusterName: 'warm-up',
      region: 'us-east-1',
      credentials: async () => ({ accessKeyId: 'AKIAWARMUP', secretAccessKey: 'warm-up' }),
    });
    cache = new CredentialCache({ upstream, maxSize: WARM_UP_REQUESTS, maxRefreshQps: 1, sweepIntervalMs: 0 });
    const port = await listenOnLoopback(listener);
    allowedHosts.add(`127.0.0.1:${port}`);
    handler = handlerFor(cache, allowedHosts);
    let next = 0;
    const worker = async () => {
      while (next < WARM_UP_REQUESTS) await get(port, standInToken(next++), client);
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    client.destroy();
    cache?.close();
    upstream?.close();
    listener.closeAllConnections();
    standIn.closeAllConnections();
    await Promise.all([new Promise((r) => listener.close(r)), new Promise((r) => standIn.close(r))]);
  }
}
