// TLS between agent and server (issue 25, item 6), with real processes: the
// server serves its API over HTTPS with a certificate from its own CA kept in
// the data directory, or from certificate files; the agent checks it against
// the CA bundle it is given (--ca-bundle or AWS_CA_BUNDLE), refuses a
// certificate of another CA without calling again, and refuses to start on a
// plain-http endpoint unless told --allow-insecure-http-endpoint. The
// association is made with @aws-sdk/client-eks trusting the same CA.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { createCertificateAuthority, issueCertificate } from '../peers/tls.js';
import { assumeRoleCalls, CLUSTER, getCredentials, ROLE_ARN, startAgentProcess, total } from './agent-harness.js';

describe('TLS between agent and server', { timeout: 120_000 }, () => {
  let dir: string;
  let signer: TestSigner;
  let generated: ServerProcess;
  let fromFiles: ServerProcess;
  let generatedCa: string;
  let filesCaPath: string;
  let otherCaPath: string;

  async function associate(server: ServerProcess, ca: string): Promise<void> {
    const eks = new EKSClient({
      endpoint: server.apiUrl,
      region: 'us-east-1',
      credentials: { ...ADMIN },
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca }) }),
    });
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: CLUSTER, namespace: 'default', serviceAccount: 'app', roleArn: ROLE_ARN }));
    eks.destroy();
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-tls-'));
    signer = await testSigner();
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwksOf(signer)));
    const cluster = { name: CLUSTER, issuer: TEST_ISSUER, jwksFile };
    // 1. a certificate from the server's own CA, made into <dataDir>/api-tls on first start
    generated = await startServerProcess({ config: { tls: {}, clusters: [cluster], issuer: { type: 'local' } } });
    generatedCa = readFileSync(join(generated.dataDir, 'api-tls', 'ca.crt'), 'utf8');
    await associate(generated, generatedCa);
    // 2. certificate files issued by the operator's CA
    const ca = await createCertificateAuthority(dir, 'operator');
    const serving = await issueCertificate(ca, { name: 'api', commonName: 'pod-identity-server', ips: ['127.0.0.1'], dnsNames: ['localhost'] });
    filesCaPath = ca.certPath;
    fromFiles = await startServerProcess({ config: { tls: { certFile: serving.certPath, keyFile: serving.keyPath }, clusters: [cluster], issuer: { type: 'local' } } });
    await associate(fromFiles, ca.certPem);
    otherCaPath = (await createCertificateAuthority(dir, 'other')).certPath;
  });

  after(async () => {
    await generated?.stop();
    await fromFiles?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the server's generated certificate: an agent given its CA with --ca-bundle gets credentials over HTTPS", async () => {
    assert.match(generated.apiUrl, /^https:/);
    const caPath = join(generated.dataDir, 'api-tls', 'ca.crt');
    const agent = await startAgentProcess({ endpoint: generated.apiUrl, args: ['--ca-bundle', caPath] });
    try {
      const answer = await getCredentials(agent.url, await signer.sign(podClaims()));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.match(answer.body.AccessKeyId!, /^ASIA/);
    } finally {
      await agent.stop();
    }
  });

  test('certificate files: AWS_CA_BUNDLE names the CA as for the AWS SDKs', async () => {
    const agent = await startAgentProcess({ endpoint: fromFiles.apiUrl, env: { AWS_CA_BUNDLE: filesCaPath } });
    try {
      const answer = await getCredentials(agent.url, await signer.sign(podClaims()));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    } finally {
      await agent.stop();
    }
  });

  test('a wrong CA, or none (the system roots), is refused: 503 naming the check, no retry, nothing reaches EKS Auth', async () => {
    for (const args of [['--ca-bundle', otherCaPath], []]) {
      const before = total(await assumeRoleCalls(generated.metricsUrl));
      const agent = await startAgentProcess({ endpoint: generated.apiUrl, args });
      try {
        const started = performance.now();
        const answer = await getCredentials(agent.url, await signer.sign(podClaims()));
        assert.equal(answer.status, 503, JSON.stringify(answer.body));
        assert.equal(answer.body.Code, 'ServiceUnavailableException');
        assert.match(answer.body.Message!, /^EKS Auth's certificate is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\): check the agent's --ca-bundle\.$/);
        assert.ok(performance.now() - started < 1000, 'not retried');
        assert.equal(total(await assumeRoleCalls(generated.metricsUrl)), before, 'no request got through');
      } finally {
        await agent.stop();
      }
    }
  });

  test('a plain-http endpoint is refused at start unless --allow-insecure-http-endpoint; an unreadable CA bundle too', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'agent', '-c', CLUSTER, '-b', '127.0.0.1', '--allow-loopback', '-p', '0', '--probe-port', '0', '--metrics-port', '0', ...args], { encoding: 'utf8', timeout: 15_000 });
    const http = run(['--endpoint', 'http://127.0.0.1:8080']);
    assert.notEqual(http.status, 0);
    assert.match(http.stderr, /EKS Auth endpoint http:\/\/127\.0\.0\.1:8080 is plain http: role credentials would cross the network unencrypted; serve the API over https \(server tls\) or pass --allow-insecure-http-endpoint/);
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const bad = run(['--endpoint', generated.apiUrl, '--ca-bundle', garbage]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /CA bundle .*garbage\.pem holds no PEM certificate/);
  });

  test('with API workers the primary makes the certificate once: every worker serves the same one, from the CA in the data directory', async () => {
    const workers = await startServerProcess({ config: { workers: 2, tls: {}, issuer: { type: 'local' } } });
    try {
      const ca = readFileSync(join(workers.dataDir, 'api-tls', 'ca.crt'), 'utf8');
      const port = Number(new URL(workers.apiUrl).port);
      const fingerprints = new Set<string>();
      for (let i = 0; i < 6; i++) {
        fingerprints.add(
          await new Promise<string>((resolve, reject) => {
            const socket = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
              resolve(socket.getPeerX509Certificate()!.fingerprint256);
              socket.end();
            });
            socket.on('error', reject);
          }),
        );
      }
      assert.equal(fingerprints.size, 1, 'one certificate, verified against the CA by every handshake');
    } finally {
      await workers.stop();
    }
  });

  test('the generated CA is kept across restarts, so agents keep trusting the server', async () => {
    const again = await startServerProcess({ dataDir: generated.dataDir, config: { tls: {}, issuer: { type: 'local' } } });
    try {
      assert.equal(readFileSync(join(generated.dataDir, 'api-tls', 'ca.crt'), 'utf8'), generatedCa);
    } finally {
      await again.stop();
    }
  });
});
