// The real peers themselves: a kube-apiserver that issues pod-bound tokens,
// reviews them and calls admission webhooks; moto's STS and IAM; boto3 and the
// AWS CLI as clients. Later suites rely on everything proven here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { AdmissionregistrationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { eventually } from '../helpers/eventually.js';
import { httpsJson } from '../peers/https.js';
import {
  applyYaml,
  createMutatingWebhookConfiguration,
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  deletePod,
  getPod,
  requestPodToken,
  tokenReview,
} from '../peers/kube-api.js';
import { EKS_AUDIENCE, kubeApiClient, kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { createRole, MOTO_ACCOUNT_ID, startMoto, type MotoServer } from '../peers/moto.js';
import { pythonPeersMissingReason, runAwsCli, runPython } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';
import { createCertificateAuthority, issueCertificate } from '../peers/tls.js';

interface PodClaims {
  namespace: string;
  serviceaccount: { name: string; uid: string };
  pod: { name: string; uid: string };
  node?: { name: string; uid: string };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('peer processes', () => {
  // A child process starts a peer (sleep) and dies without cleaning up; the
  // peer must not survive it.
  for (const death of ['SIGKILL', 'exit'] as const) {
    test(`a peer does not outlive its test process (${death})`, { timeout: 30_000 }, async () => {
      const source = [
        `import { spawnPeer } from ${JSON.stringify(fileURLToPath(new URL('../peers/processes.ts', import.meta.url)))};`,
        "const peer = spawnPeer('sleep', 'sleep', ['300']);",
        'console.log(peer.child.pid);',
        death === 'exit' ? 'setTimeout(() => process.exit(3), 200);' : 'setInterval(() => {}, 1000);',
      ].join('\n');
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
      const pid = await new Promise<number>((resolve, reject) => {
        child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
        child.once('exit', (code) => reject(new Error(`child exited (${code}) before starting its peer`)));
      });
      assert.ok(pid > 0 && groupAlive(pid), 'peer started');
      if (death === 'SIGKILL') child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      // the exit hook kills at once; the watchdog polls once a second
      await eventually(`peer ${pid} gone after its parent's ${death}`, () => !groupAlive(pid), { timeoutMs: 5_000 });
    });
  }
});

const kubeSkip = requirePeer('kube-apiserver', kubeMissingReason);

describe('Kubernetes API server peer', { skip: kubeSkip }, () => {
  let kube: KubeControlPlane;
  const namespace = 'peers';

  before(
    async () => {
      kube = await startKubeControlPlane();
      console.error(`# kube-apiserver ready in ${kube.startMs} ms at ${kube.url}`);
      await createNamespace(kube, namespace);
      await createServiceAccount(kube, namespace, 'app');
    },
    { timeout: 120_000 },
  );
  after(async () => {
    await kube?.stop();
  });

  async function podWithToken(name: string, spec: Parameters<typeof createPod>[1]['spec'] = {}) {
    const pod = await createPod(kube, { namespace, name, serviceAccountName: 'app', spec });
    const uid = pod.metadata?.uid;
    assert.ok(uid, 'stored pod has a uid');
    const { token, expirationTimestamp } = await requestPodToken(kube, { namespace, serviceAccount: 'app', podName: name, podUid: uid });
    return { pod, uid, token, expirationTimestamp };
  }

  test('TokenRequest bound to a pod: claims, and jose verifies it through OIDC discovery', { timeout: 30_000 }, async () => {
    const serviceAccount = await kubeApiClient(kube, CoreV1Api).readNamespacedServiceAccount({ namespace, name: 'app' });
    const { uid, token } = await podWithToken('token-pod');

    const claims = decodeJwt(token);
    assert.equal(claims.iss, kube.issuer);
    assert.equal(claims.sub, `system:serviceaccount:${namespace}:app`);
    assert.deepEqual(claims.aud, [EKS_AUDIENCE]);
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 86400);
    const k8s = claims['kubernetes.io'] as PodClaims;
    assert.equal(k8s.namespace, namespace);
    assert.deepEqual(k8s.serviceaccount, { name: 'app', uid: serviceAccount.metadata?.uid });
    assert.deepEqual(k8s.pod, { name: 'token-pod', uid });

    // discovery is open to anonymous clients, as with a public issuer
    const discovery = await httpsJson<{ issuer: string; jwks_uri: string; id_token_signing_alg_values_supported: string[] }>(
      `${kube.issuer}/.well-known/openid-configuration`,
      { ca: kube.caPem },
    );
    assert.equal(discovery.status, 200, discovery.text);
    assert.equal(discovery.body.issuer, kube.issuer);
    assert.equal(discovery.body.jwks_uri, `${kube.url}/openid/v1/jwks`);
    // what jose's remote JWKS client asks for (the API server answers JSON only to these)
    const jwks = await httpsJson<JSONWebKeySet>(discovery.body.jwks_uri, { ca: kube.caPem, accept: 'application/json, application/jwk-set+json' });
    assert.equal(jwks.status, 200, jwks.text);
    const verified = await jwtVerify(token, createLocalJWKSet(jwks.body), { issuer: kube.issuer, audience: EKS_AUDIENCE });
    assert.equal(verified.protectedHeader.alg, 'RS256');
    assert.equal(verified.payload.sub, `system:serviceaccount:${namespace}:app`);
  });

  test('a token of a pod bound to a node carries the node claims', { timeout: 30_000 }, async () => {
    const node = await createNode(kube, 'node-a');
    const { token } = await podWithToken('node-pod', { nodeName: 'node-a' });
    const k8s = decodeJwt(token)['kubernetes.io'] as PodClaims;
    assert.deepEqual(k8s.node, { name: 'node-a', uid: node.metadata?.uid });
  });

  test('TokenReview accepts a pod-bound token and rejects it once the pod is deleted', { timeout: 30_000 }, async () => {
    const { token } = await podWithToken('review-pod');
    const review = await tokenReview(kube, token, [EKS_AUDIENCE]);
    assert.equal(review.authenticated, true, review.error);
    assert.equal(review.user?.username, `system:serviceaccount:${namespace}:app`);
    assert.deepEqual(review.audiences, [EKS_AUDIENCE]);
    assert.deepEqual(review.user?.extra?.['authentication.kubernetes.io/pod-name'], ['review-pod']);

    const wrongAudience = await tokenReview(kube, token, ['sts.amazonaws.com']);
    assert.equal(wrongAudience.authenticated ?? false, false);

    await deletePod(kube, namespace, 'review-pod');
    let last = review;
    // the API server caches a successful token authentication for 10 s (its
    // TokenSuccessCacheTTL), so a deleted pod's token is refused within about that
    await eventually(
      'TokenReview rejects the deleted pod’s token',
      async () => {
        last = await tokenReview(kube, token, [EKS_AUDIENCE]);
        return last.authenticated !== true;
      },
      { timeoutMs: 20_000 },
    );
    assert.match(last.error ?? '', /pod|not found|invalid/i);
  });

  test('a mutating webhook is called on pod creation and its patch is stored', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pod-identity-webhook-test-'));
    let server: Server | undefined;
    try {
      const ca = await createCertificateAuthority(dir, 'webhook');
      const cert = await issueCertificate(ca, { name: 'webhook', commonName: 'peers-webhook', ips: ['127.0.0.1'] });
      const calls: Array<{ uid: string; operation: string; name: string; namespace: string }> = [];
      server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const review = JSON.parse(Buffer.concat(chunks).toString()) as {
            apiVersion: string;
            kind: string;
            request: { uid: string; operation: string; name?: string; namespace: string; object: { metadata: { name: string } } };
          };
          calls.push({
            uid: review.request.uid,
            operation: review.request.operation,
            name: review.request.object.metadata.name,
            namespace: review.request.namespace,
          });
          const patch = [{ op: 'add', path: '/metadata/labels/peers-webhook', value: 'called' }];
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              apiVersion: review.apiVersion,
              kind: review.kind,
              response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
            }),
          );
        });
      });
      const webhookServer = server;
      const port = await new Promise<number>((resolve) => {
        webhookServer.listen(0, '127.0.0.1', () => resolve((webhookServer.address() as { port: number }).port));
      });

      await createNamespace(kube, 'webhooked');
      await createMutatingWebhookConfiguration(kube, {
        metadata: { name: 'peers-test' },
        webhooks: [
          {
            name: 'peers.pod-identity.test',
            clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(ca.certPem).toString('base64') },
            rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'webhooked' } },
            sideEffects: 'None',
            admissionReviewVersions: ['v1'],
            failurePolicy: 'Fail',
            timeoutSeconds: 5,
          },
        ],
      });
      // the API server picks new configurations up from its informer: probe with dry runs
      await eventually(
        'webhook registered',
        async () => {
          const probe = await createPod(kube, { namespace: 'webhooked', name: 'probe', labels: { app: 'probe' }, dryRun: true });
          return probe.metadata?.labels?.['peers-webhook'] === 'called';
        },
        { timeoutMs: 15_000 },
      );

      const before = calls.length;
      const pod = await createPod(kube, { namespace: 'webhooked', name: 'mutated', labels: { app: 'demo' } });
      assert.equal(pod.metadata?.labels?.['peers-webhook'], 'called');
      assert.equal((await getPod(kube, 'webhooked', 'mutated')).metadata?.labels?.['peers-webhook'], 'called');
      assert.equal(calls.length, before + 1);
      assert.deepEqual({ ...calls.at(-1), uid: undefined }, { uid: undefined, operation: 'CREATE', name: 'mutated', namespace: 'webhooked' });

      // pods outside the selected namespace are not sent
      const other = await createPod(kube, { namespace, name: 'not-webhooked' });
      assert.equal(other.metadata?.labels?.['peers-webhook'], undefined);
      assert.equal(calls.length, before + 1);
    } finally {
      await kubeApiClient(kube, AdmissionregistrationV1Api)
        .deleteMutatingWebhookConfiguration({ name: 'peers-test' })
        .catch(() => {});
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('kubectl applies YAML', { timeout: 60_000 }, async () => {
    const output = await applyYaml(
      kube,
      ['apiVersion: v1', 'kind: ConfigMap', 'metadata:', '  name: applied', `  namespace: ${namespace}`, 'data:', '  key: value', ''].join('\n'),
    );
    assert.match(output, /configmap\/applied/);
    const configMap = await kubeApiClient(kube, CoreV1Api).readNamespacedConfigMap({ namespace, name: 'applied' });
    assert.deepEqual(configMap.data, { key: 'value' });
  });

  test('stop() ends etcd and kube-apiserver and removes the temp dir', { timeout: 30_000 }, async () => {
    const pgids = [kube.etcd.child.pid, kube.apiserver.child.pid];
    assert.ok(pgids.every((pgid) => pgid !== undefined && groupAlive(pgid)));
    await kube.stop();
    for (const pgid of pgids) assert.equal(groupAlive(pgid!), false, `process group ${pgid} gone`);
    assert.equal(existsSync(kube.dir), false);
  });
});

const awsSkip = requirePeer('moto, boto3 and the AWS CLI', pythonPeersMissingReason);

describe('AWS peers: moto, boto3, AWS CLI', { skip: awsSkip }, () => {
  let moto: MotoServer;

  before(
    async () => {
      moto = await startMoto();
    },
    { timeout: 90_000 },
  );
  after(async () => {
    await moto?.stop();
  });

  test('moto STS AssumeRole issues credentials that boto3 and the AWS CLI use', { timeout: 90_000 }, async () => {
    const role = await createRole(moto, { roleName: 'peers-test-role' });
    assert.equal(role.arn, `arn:aws:iam::${MOTO_ACCOUNT_ID}:role/peers-test-role`);

    const sts = new STSClient({ endpoint: moto.endpoint, region: moto.region, credentials: moto.credentials });
    const assumed = await sts.send(
      new AssumeRoleCommand({
        RoleArn: role.arn,
        RoleSessionName: 'peers-session',
        DurationSeconds: 900,
        Tags: [{ Key: 'kubernetes-namespace', Value: 'peers' }],
        TransitiveTagKeys: ['kubernetes-namespace'],
      }),
    );
    sts.destroy();
    const credentials = assumed.Credentials;
    assert.ok(credentials?.AccessKeyId && credentials.SecretAccessKey && credentials.SessionToken && credentials.Expiration);
    const assumedArn = `arn:aws:sts::${MOTO_ACCOUNT_ID}:assumed-role/peers-test-role/peers-session`;
    assert.equal(assumed.AssumedRoleUser?.Arn, assumedArn);

    const env = {
      AWS_ACCESS_KEY_ID: credentials.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.SecretAccessKey,
      AWS_SESSION_TOKEN: credentials.SessionToken,
    };
    const boto = await runPython(
      [
        'import json, sys, boto3',
        "sts = boto3.client('sts', endpoint_url=sys.argv[1])",
        'print(json.dumps(sts.get_caller_identity()))',
      ].join('\n'),
      [moto.endpoint],
      { env },
    );
    const identity = JSON.parse(boto.stdout) as { Arn: string; Account: string; UserId: string };
    assert.equal(identity.Arn, assumedArn);
    assert.equal(identity.Account, MOTO_ACCOUNT_ID);
    assert.equal(identity.UserId, `${role.roleId}:peers-session`);

    const cli = await runAwsCli(['sts', 'get-caller-identity', '--endpoint-url', moto.endpoint, '--output', 'json'], { env });
    assert.equal((JSON.parse(cli.stdout) as { Arn: string }).Arn, assumedArn);
  });
});
