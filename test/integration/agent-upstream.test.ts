// The agent's EKS Auth client against a stand-in EKS Auth peer: a local
// node:http server speaking the wire format of DESIGN §3.2 and checking the
// SigV4 signature with the server's own verifier. Covers what the real server
// cannot be made to do on demand: 5xx, hangs, dropped connections.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { PresentedToken, type IssuedCredentials } from '../../src/agent/credentials.js';
import { formatExpiration } from '../../src/api/credentials.js';
import { EksAuthUpstream } from '../../src/agent/upstream.js';
import { WireError } from '../../src/lib/errors.js';
import { listen, readBody } from '../../src/lib/http.js';
import { verifySigV4 } from '../../src/lib/sigv4.js';

const NODE_KEY = { accessKeyId: 'AKIANODEUPSTREAM', secretAccessKey: 'node-secret' };
const EXP = Math.floor(Date.now() / 1000) + 3600;

function token(): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part({ sub: 'system:serviceaccount:shop:checkout', exp: EXP })}.c2ln`;
}

interface Seen {
  path: string;
  body: Record<string, unknown>;
  service: string;
}

/** The container-credentials answer the upstream encoded, as the SDKs read it. */
function served(credentials: IssuedCredentials): Record<string, string> {
  return JSON.parse(credentials.body.toString()) as Record<string, string>;
}

type Behaviour = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

const ok: Behaviour = (_req, res) => {
  const body = JSON.stringify({
    subject: { namespace: 'shop', serviceAccount: 'checkout' },
    audience: 'pods.eks.amazonaws.com',
    podIdentityAssociation: { associationArn: 'arn:aws:eks:us-east-1:111122223333:podidentityassociation/demo/a-1', associationId: 'a-1' },
    assumedRoleUser: { arn: 'arn:aws:sts::111122223333:assumed-role/checkout/eks-demo-pod', assumeRoleId: 'AROAEXAMPLE:eks-demo-pod' },
    credentials: { accessKeyId: 'ASIAPEER', secretAccessKey: 'peer-secret', sessionToken: 'peer-session', expiration: EXP },
  });
  res.writeHead(200, { 'content-type': 'application/json' }).end(body);
};

function fail(status: number, type: string): Behaviour {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type }).end(JSON.stringify({ __type: type, message: `${type} from the peer` }));
  };
}

describe('EKS Auth upstream against a stand-in EKS Auth peer', () => {
  let server: Server;
  let endpoint: string;
  let script: Behaviour[] = [];
  let seen: Seen[] = [];

  before(async () => {
    server = createServer(async (req, res) => {
      const raw = await readBody(req);
      const url = new URL(req.url!, 'http://x');
      let service: string;
      try {
        const caller = verifySigV4(
          { method: req.method!, path: url.pathname, query: url.searchParams, headers: req.headers, body: raw },
          { service: 'eks-auth', region: 'us-east-1', lookup: (id) => (id === NODE_KEY.accessKeyId ? NODE_KEY : undefined) },
        );
        service = caller.service;
      } catch (error) {
        fail(403, (error as WireError).code)(req, res, { path: '', body: {}, service: '' });
        return;
      }
      const entry: Seen = { path: url.pathname, body: JSON.parse(raw.toString()) as Record<string, unknown>, service };
      seen.push(entry);
      (script.shift() ?? ok)(req, res, entry);
    });
    const bound = await listen(server, { host: '127.0.0.1', port: 0 });
    endpoint = `http://127.0.0.1:${bound.port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    script = [];
    seen = [];
  });

  function upstream(options: Partial<ConstructorParameters<typeof EksAuthUpstream>[0]> = {}): EksAuthUpstream {
    return new EksAuthUpstream({
      endpoint,
      // the stand-in peer speaks plain http on loopback
      allowInsecureHttp: true,
      clusterName: 'demo',
      region: 'us-east-1',
      credentials: async () => NODE_KEY,
      nodeName: 'node-1',
      timeoutMs: 300,
      backoffBaseMs: 5,
      backoffCapMs: 20,
      ...options,
    });
  }

  test('a signed POST to /clusters/{name}/assume-role-for-pod-identity with token and eksNodeName', async () => {
    const client = upstream();
    const credentials = await client.getCredentials(new PresentedToken(token()));
    client.close();
    assert.equal(credentials.expiresAt, EXP * 1000);
    assert.deepEqual(served(credentials), { AccessKeyId: 'ASIAPEER', SecretAccessKey: 'peer-secret', Token: 'peer-session', AccountId: '111122223333', Expiration: formatExpiration(EXP * 1000) });
    assert.deepEqual(credentials.headers, ['content-type', 'application/json', 'content-length', String(credentials.body.length)]);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.path, '/clusters/demo/assume-role-for-pod-identity');
    assert.equal(seen[0]!.service, 'eks-auth');
    assert.deepEqual(seen[0]!.body, { token: token(), eksNodeName: 'node-1' });
  });

  test('without a node name the body carries the token only', async () => {
    const client = upstream({ nodeName: undefined });
    await client.getCredentials(new PresentedToken(token()));
    client.close();
    assert.deepEqual(seen[0]!.body, { token: token() });
  });

  test('kept-alive: several calls share one connection', async () => {
    const sockets = new Set<unknown>();
    const onConnection = (socket: unknown) => sockets.add(socket);
    server.on('connection', onConnection);
    const client = upstream();
    for (let i = 0; i < 5; i++) await client.getCredentials(new PresentedToken(token()));
    client.close();
    server.off('connection', onConnection);
    assert.equal(sockets.size, 1);
  });

  test('throttling and 5xx are retried with backoff, then succeed', async () => {
    script = [fail(429, 'ThrottlingException'), fail(503, 'ServiceUnavailableException')];
    const attempts: string[] = [];
    const client = upstream({ events: { attempt: (outcome) => attempts.push(outcome) } });
    const credentials = await client.getCredentials(new PresentedToken(token()));
    client.close();
    assert.equal(served(credentials).AccessKeyId, 'ASIAPEER');
    assert.deepEqual(attempts, ['ThrottlingException', 'ServiceUnavailableException', 'ok']);
  });

  test('persistent throttling ends in a 429 ThrottlingException after 3 attempts', async () => {
    script = [fail(429, 'ThrottlingException'), fail(429, 'ThrottlingException'), fail(429, 'ThrottlingException'), ok];
    const client = upstream();
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 429 && e.code === 'ThrottlingException');
    client.close();
    assert.equal(seen.length, 3);
  });

  for (const [status, type] of [
    [400, 'InvalidTokenException'],
    [400, 'ExpiredTokenException'],
    [400, 'AccessDeniedException'],
    [404, 'ResourceNotFoundException'],
    [400, 'InvalidParameterException'],
  ] as const) {
    test(`${type} (${status}) is not retried and keeps its status`, async () => {
      script = [fail(status, type)];
      const client = upstream();
      await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === status && e.code === type && /from the peer/.test(e.message));
      client.close();
      assert.equal(seen.length, 1);
    });
  }

  test('a 500 that persists keeps its status', async () => {
    script = [fail(500, 'InternalServerException'), fail(500, 'InternalServerException'), fail(500, 'InternalServerException')];
    const client = upstream();
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 500 && e.code === 'InternalServerException');
    client.close();
    assert.equal(seen.length, 3);
  });

  test('a peer that does not answer in time is retried, then 503', async () => {
    const hang: Behaviour = () => {};
    script = [hang, hang, hang];
    const attempts: string[] = [];
    const client = upstream({ timeoutMs: 100, events: { attempt: (outcome) => attempts.push(outcome) } });
    const started = performance.now();
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 503 && /no answer within 100 ms/.test(e.message));
    client.close();
    assert.deepEqual(attempts, ['timeout', 'timeout', 'timeout']);
    assert.ok(performance.now() - started < 2000);
  });

  test('a dropped connection is retried', async () => {
    script = [(req) => req.socket.destroy()];
    const client = upstream();
    assert.equal(served(await client.getCredentials(new PresentedToken(token()))).AccessKeyId, 'ASIAPEER');
    client.close();
    assert.equal(seen.length, 2);
  });

  test('nothing listening: retried, then 503 ServiceUnavailableException', async () => {
    const probe = createServer();
    const { port } = await listen(probe, { host: '127.0.0.1', port: 0 });
    await new Promise((r) => probe.close(r));
    const client = upstream({ endpoint: `http://127.0.0.1:${port}` });
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 503 && e.code === 'ServiceUnavailableException' && /ECONNREFUSED/.test(e.message));
    client.close();
  });

  test('a 200 the agent cannot read is a 500, not retried', async () => {
    script = [(_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"credentials":null}')];
    const client = upstream();
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 500);
    client.close();
    assert.equal(seen.length, 1);
  });

  test('a wrong signing key is refused by the peer (403) and not retried', async () => {
    const client = upstream({ credentials: async () => ({ accessKeyId: NODE_KEY.accessKeyId, secretAccessKey: 'wrong' }) });
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 403 && e.code === 'InvalidSignatureException');
    client.close();
  });

  test('no signing keys in the default chain: a 500 saying so, no call', async () => {
    const client = upstream({
      credentials: async () => {
        throw new Error('Could not load credentials from any providers');
      },
    });
    await assert.rejects(client.getCredentials(new PresentedToken(token())), (e: WireError) => e.status === 500 && /no AWS credentials/.test(e.message));
    client.close();
    assert.equal(seen.length, 0);
  });

  test('a malformed token is refused before any call', async () => {
    const client = upstream();
    await assert.rejects(client.getCredentials(new PresentedToken('garbage')), (e: WireError) => e.status === 400);
    client.close();
    assert.equal(seen.length, 0);
  });
});
