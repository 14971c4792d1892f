// Property-based tests (fast-check, fixed seed) against the real processes:
// raw request lines and headers to the agent, signed association API bodies
// and query strings to the server, and AdmissionReview bodies to its webhook.
// Whatever arrives, each answers with a well-formed response of its contract
// (never a 5xx for bad input, never credentials for junk), and stays up: a
// real request still works afterwards.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { signRequest } from '../../src/lib/sigv4.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { ADMIN } from '../helpers/server-process.js';
import { httpsJson } from '../peers/https.js';
import { CLUSTER, getCredentials, startAgentProcess, startControlPlane, type AgentProcess, type ControlPlane } from './agent-harness.js';

/** Sends bytes as they are and reads until the peer closes (or 3 s pass). */
function raw(port: number, payload: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.end(payload);
  });
}

const headerText = fc.oneof(fc.string({ unit: 'binary-ascii', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('', ' ', '\t', 'a\rb', 'a\nb', 'a\0b', 'x'.repeat(20_000)));
const jwtish = fc
  .tuple(fc.jsonValue(), fc.jsonValue(), fc.string({ maxLength: 20 }))
  .map(([h, p, s]) => `${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.${Buffer.from(s).toString('base64url')}`);

describe('fuzz: the real processes at their HTTP boundaries', { timeout: 180_000 }, () => {
  let cp: ControlPlane;
  let agent: AgentProcess;

  before(async () => {
    cp = await startControlPlane();
    await cp.associate('default', 'app');
    agent = await startAgentProcess({ endpoint: cp.server.apiUrl });
  });
  after(async () => {
    await agent?.stop();
    await cp?.stop();
  });

  test("the agent's request line and headers: every answer is HTTP/1.1 with a JSON body of its contract, no junk gets credentials", async () => {
    const host = `127.0.0.1:${agent.port}`;
    const request = fc
      .record({
        method: fc.oneof({ arbitrary: fc.constant('GET'), weight: 6 }, fc.constantFrom('POST', 'HEAD', 'OPTIONS', 'CONNECT', 'get'), fc.string({ unit: 'binary-ascii', maxLength: 8 })),
        path: fc.oneof({ arbitrary: fc.constant('/v1/credentials'), weight: 6 }, fc.constantFrom('/v1/credentials?x=1', '/', '*', '//v1/credentials', '/v1/credentials/../x'), fc.string({ unit: 'binary-ascii', maxLength: 30 })),
        version: fc.oneof({ arbitrary: fc.constant('HTTP/1.1'), weight: 8 }, fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 x', '')),
        host: fc.oneof({ arbitrary: fc.constant(host), weight: 4 }, fc.constant(host.toUpperCase()), fc.constantFrom('169.254.170.23', 'localhost', `evil:${agent.port}`, ''), headerText),
        authorization: fc.option(fc.oneof({ arbitrary: jwtish, weight: 3 }, headerText)),
        extra: fc.array(fc.tuple(fc.oneof(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Host', 'Authorization', 'Connection', 'Expect'), fc.string({ unit: 'binary-ascii', maxLength: 12 })), headerText), { maxLength: 2 }),
        body: fc.string({ unit: 'binary-ascii', maxLength: 50 }),
      })
      .map(({ method, path, version, host: h, authorization, extra, body }) => {
        let text = `${method} ${path} ${version}\r\nHost: ${h}\r\n`;
        if (authorization !== null) text += `Authorization: ${authorization}\r\n`;
        for (const [name, value] of extra) text += `${name}: ${value}\r\n`;
        return Buffer.from(`${text}Connection: close\r\n\r\n${body}`, 'latin1');
      });
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (payload) => {
        const answer = await raw(agent.port, payload);
        if (answer === '') return; // closed without answering: allowed (e.g. after a parse error on a dead socket)
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
        assert.ok(Number.isInteger(status), `not an HTTP/1.1 answer: ${JSON.stringify(answer.slice(0, 80))}`);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok([400, 403, 404, 405, 408, 413, 417, 429, 431, 503].includes(status), `status ${status} for ${JSON.stringify(payload.toString('latin1').slice(0, 200))}`);
        // the first answer only: bytes after a request without a body are the next (pipelined) request; HEAD answers carry none
        const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
        const body = answer.slice(head.length + 4, head.length + 4 + length);
        if (body.length > 0 && !payload.toString('latin1').startsWith('HEAD ')) {
          const parsed = JSON.parse(body) as { Code?: unknown; Message?: unknown };
          assert.equal(typeof parsed.Code, 'string');
          assert.equal(typeof parsed.Message, 'string');
        }
      }),
      fuzzRuns(400),
    );
    assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(403) ?? 0) > 0, `answers by status: ${JSON.stringify([...statuses])}`);
    // still up, still serving
    const ok = await getCredentials(agent.url, await cp.token());
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(agent.child.exitCode, null);
  });

  test('the association API: signed bodies and queries of every operation get 200 or a 4xx of the EKS API, never a 5xx', async () => {
    const api = new URL(cp.server.apiUrl);
    const operation = fc.oneof(
      fc.record({ method: fc.constant('POST'), path: fc.constant(`/clusters/${CLUSTER}/pod-identity-associations`), body: fc.oneof(fc.jsonValue(), fc.record({ namespace: fc.string(), serviceAccount: fc.string(), roleArn: fc.string(), tags: fc.dictionary(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })) }, { requiredKeys: [] })) }),
      fc.record({ method: fc.constant('GET'), path: fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((q) => `/clusters/${CLUSTER}/pod-identity-associations?${encodeURI(q)}`), body: fc.constant(undefined) }),
      fc.record({ method: fc.constantFrom('POST', 'GET', 'DELETE'), path: fc.string({ maxLength: 60 }).map((arn) => `/tags/${encodeURIComponent(arn)}`), body: fc.oneof(fc.jsonValue(), fc.record({ tags: fc.dictionary(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })) })) }),
      fc.record({ method: fc.constantFrom('POST', 'GET', 'DELETE'), path: fc.string({ unit: 'binary-ascii', maxLength: 20 }).map((id) => `/clusters/${CLUSTER}/pod-identity-associations/${encodeURIComponent(id)}`), body: fc.jsonValue() }),
    );
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(operation, async ({ method, path, body }) => {
        const url = new URL(path, api);
        const text = body === undefined || method === 'GET' || method === 'DELETE' ? '' : JSON.stringify(body);
        const headers = await signRequest({ method, url, headers: { 'content-type': 'application/json' }, body: text }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' });
        const res = await fetch(url, { method, headers, ...(text && { body: text }), signal: AbortSignal.timeout(5000) });
        const answer = (await res.json()) as { __type?: string };
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        assert.ok(res.status < 500, `${res.status} ${JSON.stringify(answer)} for ${method} ${path} ${text.slice(0, 200)}`);
        if (res.status >= 400) assert.equal(res.headers.get('x-amzn-errortype'), answer.__type);
      }),
      fuzzRuns(300),
    );
    assert.ok((statuses.get(400) ?? 0) > 0, `answers by status: ${JSON.stringify([...statuses])}`);
  });

  test('the admission webhook: any body gets a 200 AdmissionReview answer with allowed: true (or a 4xx for no review at all)', async () => {
    const ca = readFileSync(join(cp.server.dataDir, 'webhook-tls', 'ca.crt'), 'utf8');
    const body = fc.oneof(
      fc.anything(),
      fc.record({ apiVersion: fc.constant('admission.k8s.io/v1'), kind: fc.constant('AdmissionReview'), request: fc.record({ uid: fc.oneof(fc.uuid(), fc.anything()), operation: fc.constant('CREATE'), object: fc.oneof(fc.anything(), fc.record({ metadata: fc.anything(), spec: fc.record({ serviceAccountName: fc.constant('app'), containers: fc.anything() }) })) }, { requiredKeys: [] }) }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (review) => {
        const answer = await httpsJson<{ response?: { allowed?: boolean } }>(`${cp.server.webhookUrl}/mutate`, { method: 'POST', ca, body: review, timeoutMs: 5000 });
        if (review === undefined) {
          assert.equal(answer.status, 415, 'no body, no content type: not a review');
          return;
        }
        assert.equal(answer.status, 200, answer.text);
        assert.equal(answer.body.response?.allowed, true);
      }),
      fuzzRuns(200),
    );
    assert.equal(cp.server.child.exitCode, null, 'the server is still running');
  });
});
