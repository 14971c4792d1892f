// The lean reference for the AssumeRoleForPodIdentity benchmark: the least
// work a request with a never-seen token needs, written inline on node:http
// and node:crypto, in as many processes as the server has API workers. It is
// a yardstick, not a server to use: one node key, one cluster, one RS256 key,
// associations from a fixed map, no caches, no metrics, no throttles. What it
// keeps is what every such request must do: check the SigV4 signature,
// verify the token's signature and claims, find the role, mint credentials
// and write the audit record (with the server's own logger and audit writer).
// Its CPU per request is the floor for any server of the same contract on
// this machine; the benchmark measures the tail it gets at the paced rate.
//
// Run as its own process: node --import tsx bench/lib/lean-server.ts, with
// LEAN_SPEC (JSON, LeanSpec) in the environment; prints `ready` once every
// worker listens.
import cluster from 'node:cluster';
import { createHmac, createPublicKey, hash, randomFillSync, randomUUID, timingSafeEqual, verify, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { AuditLog } from '../../src/lib/audit.js';
import { assumedRoleArn } from '../../src/auth/session.js';
import { createLogger } from '../../src/lib/logger.js';

export interface LeanSpec {
  port: number;
  workers: number;
  jwksFile: string;
  issuer: string;
  clusterName: string;
  accountId: string;
  node: { accessKeyId: string; secretAccessKey: string };
  /** `<namespace>/<service account>` → role ARN */
  roles: Record<string, string>;
}

const spec = JSON.parse(process.env.LEAN_SPEC ?? '{}') as LeanSpec;
const AUDIENCE = 'pods.eks.amazonaws.com';
const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/eks-auth\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;
const SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function startWorker(): void {
  const jwk = (JSON.parse(readFileSync(spec.jwksFile, 'utf8')) as { keys: (JsonWebKey & { kid: string })[] }).keys[0]!;
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
  // each role's ARN and its sessions' ARN prefix, worked out once
  const roles = new Map(Object.entries(spec.roles).map(([subject, roleArn]) => [subject, { roleArn, sessionArnPrefix: assumedRoleArn(roleArn, '') }]));
  const issuerKey = randomFillSync(Buffer.alloc(32));
  const audit = new AuditLog(createLogger({ level: 'info', batched: true }));
  const signingKeys = new Map<string, Buffer>();
  const random = Buffer.alloc(4096);
  let randomOffset = random.length;

  function signingKey(date: string, region: string): Buffer {
    const scope = `${date}/${region}`;
    let key = signingKeys.get(scope);
    if (!key) {
      key = Buffer.from(`AWS4${spec.node.secretAccessKey}`);
      for (const part of [date, region, 'eks-auth', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
      signingKeys.set(scope, key);
    }
    return key;
  }

  /** The SigV4 check: the node key, the scope, the clock, and the signature over the signed headers and the body. */
  function signatureValid(req: IncomingMessage, body: Buffer): boolean {
    const auth = AUTHORIZATION.exec(req.headers.authorization ?? '');
    const amzDate = req.headers['x-amz-date'];
    if (!auth || auth[1] !== spec.node.accessKeyId || typeof amzDate !== 'string' || !amzDate.startsWith(auth[2]!)) return false;
    const signedAt = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
    if (!(Math.abs(Date.now() - signedAt) <= 300_000)) return false;
    const payloadHash = hash('sha256', body, 'hex');
    let canonical = `${req.method}\n${req.url}\n\n`;
    for (const name of auth[4]!.split(';')) canonical += `${name}:${name === 'x-amz-content-sha256' ? payloadHash : (req.headers[name] as string)}\n`;
    canonical += `\n${auth[4]}\n${payloadHash}`;
    const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${auth[2]}/${auth[3]}/eks-auth/aws4_request\n${hash('sha256', canonical, 'hex')}`;
    return timingSafeEqual(createHmac('sha256', signingKey(auth[2]!, auth[3]!)).update(stringToSign).digest(), Buffer.from(auth[5]!, 'hex'));
  }

  interface TokenClaims {
    exp?: number;
    nbf?: number;
    iat?: number;
    iss?: string;
    aud?: string | string[];
    sub?: string;
    'kubernetes.io'?: { namespace?: string; serviceaccount?: { name?: string }; pod?: { name?: string; uid?: string }; node?: { name?: string } };
  }

  interface Pod {
    namespace: string;
    serviceAccount: string;
    podName: string;
    podUid: string;
    nodeName?: string;
  }

  /** The token's signature (RS256, the cluster's key) and claims: time, issuer, audience, subject, pod binding. */
  function verifiedPod(token: string): Pod | undefined {
    const firstDot = token.indexOf('.');
    const secondDot = token.indexOf('.', firstDot + 1);
    const header = JSON.parse(Buffer.from(token.slice(0, firstDot), 'base64url').toString()) as { alg?: string; kid?: string };
    if (header.alg !== 'RS256' || header.kid !== jwk.kid) return undefined;
    if (!verify('sha256', Buffer.from(token.slice(0, secondDot)), publicKey, Buffer.from(token.slice(secondDot + 1), 'base64url'))) return undefined;
    const claims = JSON.parse(Buffer.from(token.slice(firstDot + 1, secondDot), 'base64url').toString()) as TokenClaims;
    const now = Date.now() / 1000;
    if (!((claims.exp ?? 0) > now - 60) || (claims.nbf ?? 0) > now + 60 || (claims.iat ?? 0) > now + 60 || claims.iss !== spec.issuer) return undefined;
    if (!(Array.isArray(claims.aud) ? claims.aud.includes(AUDIENCE) : claims.aud === AUDIENCE)) return undefined;
    const subject = SUBJECT.exec(claims.sub ?? '');
    const k8s = claims['kubernetes.io'];
    if (!subject || k8s?.namespace !== subject[1] || k8s.serviceaccount?.name !== subject[2] || !k8s.pod?.name || !k8s.pod.uid) return undefined;
    return { namespace: subject[1]!, serviceAccount: subject[2]!, podName: k8s.pod.name, podUid: k8s.pod.uid, nodeName: k8s.node?.name };
  }

  function accessKeyId(): string {
    if (randomOffset + 16 > random.length) {
      randomFillSync(random);
      randomOffset = 0;
    }
    let id = 'ASIA';
    for (let i = 0; i < 16; i++) id += BASE32[random[randomOffset + i]! & 31];
    randomOffset += 16;
    return id;
  }

  function answer(res: ServerResponse, status: number, body: unknown): void {
    const payload = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const started = performance.now();
    if (!signatureValid(req, body)) return answer(res, 403, { message: 'signature' });
    const token = (JSON.parse(body.toString()) as { token?: unknown }).token;
    const pod = typeof token === 'string' ? verifiedPod(token) : undefined;
    if (!pod) return answer(res, 400, { message: 'token' });
    const role = roles.get(`${pod.namespace}/${pod.serviceAccount}`);
    if (!role) return answer(res, 404, { message: 'association' });
    const sessionName = `eks-${spec.clusterName}-${pod.podName}-${randomUUID()}`.slice(0, 64);
    const arn = `${role.sessionArnPrefix}${sessionName}`;
    const expiration = Math.floor(Date.now() / 1000) + 3600;
    const keyId = accessKeyId();
    const session = Buffer.from(JSON.stringify({ k: keyId, a: arn, c: spec.accountId, e: expiration })).toString('base64url');
    const mac = createHmac('sha512', issuerKey).update(session).digest();
    answer(res, 200, {
      subject: { namespace: pod.namespace, serviceAccount: pod.serviceAccount },
      audience: AUDIENCE,
      podIdentityAssociation: { associationArn: `arn:aws:eks:us-east-1:${spec.accountId}:podidentityassociation/${spec.clusterName}/a-lean`, associationId: 'a-lean' },
      assumedRoleUser: { arn, assumeRoleId: `AROALEAN:${sessionName}` },
      credentials: { accessKeyId: keyId, secretAccessKey: mac.subarray(32, 62).toString('base64'), sessionToken: `LEAN.${session}.${mac.subarray(0, 32).toString('base64url')}`, expiration },
    });
    audit.record({
      type: 'eks-auth-decision',
      time: new Date().toISOString(),
      requestId: randomUUID(),
      cluster: spec.clusterName,
      caller: spec.node.accessKeyId,
      namespace: pod.namespace,
      serviceAccount: pod.serviceAccount,
      podName: pod.podName,
      podUid: pod.podUid,
      ...(pod.nodeName && { node: pod.nodeName }),
      associationId: 'a-lean',
      roleArn: role.roleArn,
      sessionName,
      accessKeyId: keyId,
      outcome: 'allowed',
      latencyMs: performance.now() - started,
    }, 'eks-auth decision');
  }

  createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  }).listen(spec.port, '127.0.0.1', () => spec.workers <= 1 && console.log('ready'));
}

if (spec.workers > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => ++listening === spec.workers && console.log('ready'));
  for (let i = 0; i < spec.workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  });
} else {
  startWorker();
}
