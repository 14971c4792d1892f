// The lean reference for the agent's memory and cold-start figures: a bare
// node:http server doing the agent's work and no more, in plain CommonJS run
// by `node` itself (no tsx, no package but Node's own). GET /v1/credentials
// takes the token from Authorization, answers from a Map keyed by its
// SHA-256, and on a miss makes one SigV4-signed AssumeRoleForPodIdentity call
// to the server (kept-alive connections; concurrent requests for one token
// share it) and keeps the encoded answer. No host check, limits, metrics,
// logs, refresh or eviction: what is left is what every agent must hold.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_NODE } from './control-plane.js';
import { startProcess } from './processes.js';

const LEAN_AGENT = `
'use strict';
const http = require('node:http');
const { createHmac, hash } = require('node:crypto');
const upstream = new URL(process.env.UPSTREAM + '/clusters/bench/assume-role-for-pod-identity');
const keyId = process.env.AWS_ACCESS_KEY_ID;
const secret = process.env.AWS_SECRET_ACCESS_KEY;
const pool = new http.Agent({ keepAlive: true, maxSockets: 64 });
const cache = new Map();
const inflight = new Map();
let signingDate = '';
let signingKey;

function sign(body, amzDate) {
  const date = amzDate.slice(0, 8);
  if (date !== signingDate) {
    let key = Buffer.from('AWS4' + secret);
    for (const part of [date, 'us-east-1', 'eks-auth', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
    signingKey = key;
    signingDate = date;
  }
  const payloadHash = hash('sha256', body, 'hex');
  const headers = { 'content-length': String(Buffer.byteLength(body)), 'content-type': 'application/json', host: upstream.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  const names = Object.keys(headers);
  const canonical = 'POST\\n' + upstream.pathname + '\\n\\n' + names.map((n) => n + ':' + headers[n] + '\\n').join('') + '\\n' + names.join(';') + '\\n' + payloadHash;
  const scope = date + '/us-east-1/eks-auth/aws4_request';
  const signature = createHmac('sha256', signingKey).update('AWS4-HMAC-SHA256\\n' + amzDate + '\\n' + scope + '\\n' + hash('sha256', canonical, 'hex')).digest('hex');
  headers.authorization = 'AWS4-HMAC-SHA256 Credential=' + keyId + '/' + scope + ', SignedHeaders=' + names.join(';') + ', Signature=' + signature;
  return headers;
}

function fetchCredentials(token) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ token });
    const amzDate = new Date().toISOString().replace(/[-:]|\\.\\d{3}/g, '');
    const req = http.request(upstream, { method: 'POST', headers: sign(body, amzDate), agent: pool }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error('upstream ' + res.statusCode));
        const answer = JSON.parse(Buffer.concat(chunks).toString());
        const c = answer.credentials;
        resolve(Buffer.from(JSON.stringify({
          AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, Token: c.sessionToken,
          AccountId: answer.assumedRoleUser.arn.split(':')[4], Expiration: new Date(c.expiration * 1000).toISOString().slice(0, 19) + 'Z',
        })));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function send(res, status, body) {
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(body.length)]);
  res.end(body);
}

http.createServer((req, res) => {
  const token = req.headers.authorization;
  if (!token) return send(res, 400, Buffer.from('{"Code":"InvalidParameterException"}'));
  const key = hash('sha256', token, 'base64');
  const cached = cache.get(key);
  if (cached) return send(res, 200, cached);
  let pending = inflight.get(key);
  if (!pending) {
    pending = fetchCredentials(token).finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  pending.then((body) => { cache.set(key, body); send(res, 200, body); }, () => send(res, 503, Buffer.from('{"Code":"ServiceUnavailableException"}')));
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
`;

/** Starts the lean agent on 127.0.0.1:`port` for the server at `apiUrl`, signing with the bench's node key. */
export function startLeanAgent(apiUrl: string, port: number, nodeArgs: string[] = []): Promise<ChildProcess> {
  const script = join(mkdtempSync(join(tmpdir(), 'bench-lean-agent-')), 'lean-agent.cjs');
  writeFileSync(script, LEAN_AGENT);
  return startProcess([...nodeArgs, script], { UPSTREAM: apiUrl, PORT: String(port), AWS_ACCESS_KEY_ID: BENCH_NODE.accessKeyId, AWS_SECRET_ACCESS_KEY: BENCH_NODE.secretAccessKey }, 'ready');
}
