// Tokens issued by a real kube-apiserver (TokenRequest bound to a pod on a
// node), verified by the built server in every mode that talks to a cluster:
// the API server's JWKS through the kubeconfig (plus pod liveness checks),
// TokenReview (with a token, and with an exec credential plugin), and OIDC
// discovery of the issuer. A deleted pod's token stops working within 60 s
// wherever the server has API access; a failing credential plugin is a
// ServiceUnavailableException and a log line naming it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/eventually.js';
import { createAssociation, signedPost } from '../helpers/signed-post.js';
import { NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { createNode, createPod, createServiceAccount, deletePod, requestPodToken } from '../peers/kube-api.js';
import { kubeMissingReason, startKubeControlPlane, writeExecKubeconfig, type ExecKubeconfig, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';

const skip = requirePeer('kube-apiserver', kubeMissingReason);
const MODES = ['jwks', 'review', 'exec', 'discovery'] as const;

describe('EKS Auth with a real kube-apiserver', { skip, timeout: 300_000 }, () => {
  let kube: KubeControlPlane;
  let server: ServerProcess;
  let exec: ExecKubeconfig;
  let failingExec: ExecKubeconfig;

  before(async () => {
    kube = await startKubeControlPlane();
    await createServiceAccount(kube, 'default', 'app');
    await createNode(kube, 'node-1');
    exec = writeExecKubeconfig(kube, 'server');
    failingExec = writeExecKubeconfig(kube, 'logged-out', { failWith: 'error: the SSO session has expired; run: login' });
    server = await startServerProcess({
      config: {
        clusters: [
          { name: 'jwks', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath, tokenReview: false },
          { name: 'review', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath, tokenReview: true },
          // credentials from an exec plugin, as managed and OIDC-backed clusters hand them out
          { name: 'exec', issuer: kube.issuer, kubeconfig: exec.path, tokenReview: true },
          { name: 'exec-fails', issuer: kube.issuer, kubeconfig: failingExec.path, tokenReview: true },
          { name: 'discovery', issuer: kube.issuer },
        ],
      },
      // OIDC discovery over HTTPS from the server process: trust the test cluster's CA.
      env: { NODE_EXTRA_CA_CERTS: kube.caCertPath },
      // exec-fails keeps the server not ready (its credentials fail): wait for it to be alive
      untilAlive: true,
    });
    for (const cluster of [...MODES, 'exec-fails']) {
      await createAssociation(server.apiUrl, cluster, { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app' });
    }
  });

  after(async () => {
    if (process.env.SHOW_SERVER_LOGS) console.error(server?.logs());
    await server?.stop();
    await kube?.stop();
  });

  async function podWithToken(name: string, audience?: string) {
    const pod = await createPod(kube, { namespace: 'default', name, serviceAccountName: 'app', spec: { nodeName: 'node-1' } });
    const { token } = await requestPodToken(kube, { namespace: 'default', serviceAccount: 'app', podName: name, podUid: pod.metadata!.uid!, ...(audience && { audience }) });
    return { pod, token };
  }

  const exchange = (cluster: string, body: Record<string, unknown>) => signedPost(new URL(`/clusters/${cluster}/assume-role-for-pod-identity`, server.apiUrl), body, NODE, 'eks-auth');

  it('accepts a pod-bound token of the cluster in JWKS, TokenReview (token and exec plugin) and OIDC discovery modes', async () => {
    const { token } = await podWithToken('web-1');
    for (const cluster of MODES) {
      const answer = await exchange(cluster, { token, eksNodeName: 'node-1' });
      assert.equal(answer.status, 200, `${cluster}: ${JSON.stringify(answer.body)}`);
      assert.deepEqual(answer.body.subject, { namespace: 'default', serviceAccount: 'app' });
      assert.match(answer.body.assumedRoleUser.arn, new RegExp(`^arn:aws:sts::111122223333:assumed-role/app/eks-${cluster}-web-1-`));
    }
  });

  it('binds tokens to their node and refuses other audiences', async () => {
    const { token } = await podWithToken('web-2');
    for (const cluster of MODES) {
      const answer = await exchange(cluster, { token, eksNodeName: 'node-2' });
      assert.equal(answer.status, 400, cluster);
      assert.equal(answer.body.__type, 'AccessDeniedException');
    }
    const other = await podWithToken('web-3', 'sts.amazonaws.com');
    for (const cluster of MODES) {
      const answer = await exchange(cluster, { token: other.token });
      assert.equal(answer.status, 400, cluster);
      assert.equal(answer.body.__type, 'InvalidTokenException', `${cluster}: ${JSON.stringify(answer.body)}`);
      assert.match(answer.body.message, /audience/);
    }
  });

  it("refuses a deleted pod's token within 60 s, with JWKS (liveness check) and with TokenReview", async (t) => {
    const { token } = await podWithToken('doomed');
    for (const cluster of ['jwks', 'review']) assert.equal((await exchange(cluster, { token })).status, 200, cluster);
    await deletePod(kube, 'default', 'doomed');
    const deleted = Date.now();
    const refusedAfter: Record<string, number> = {};
    const refusals: Record<string, Awaited<ReturnType<typeof exchange>>> = {};
    await eventually(
      'both modes refuse the token',
      async () => {
        for (const cluster of ['jwks', 'review']) {
          if (refusedAfter[cluster] !== undefined) continue;
          const answer = await exchange(cluster, { token });
          if (answer.status !== 200) {
            refusals[cluster] = answer;
            refusedAfter[cluster] = Date.now() - deleted;
          }
        }
        return Object.keys(refusedAfter).length === 2;
      },
      { timeoutMs: 60_000, intervalMs: 1_000, context: () => `refused after deletion (ms): ${JSON.stringify(refusedAfter)}` },
    );
    t.diagnostic(`refused after deletion: JWKS mode ${refusedAfter.jwks} ms, TokenReview mode ${refusedAfter.review} ms`);
    assert.ok(refusedAfter.jwks !== undefined && refusedAfter.jwks < 60_000, `JWKS mode still accepted the token ${Date.now() - deleted} ms after deletion`);
    assert.ok(refusedAfter.review !== undefined && refusedAfter.review < 60_000, `TokenReview mode still accepted the token ${Date.now() - deleted} ms after deletion`);
    for (const [cluster, answer] of Object.entries(refusals)) {
      assert.equal(answer.status, 400, `${cluster}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.__type, 'InvalidTokenException');
    }
  });

  it('TokenReview through an exec plugin: the plugin ran once per process for every review so far', () => {
    // once in the primary (its readiness probe of the cluster's API server), once in the API worker (every TokenReview)
    assert.equal(readFileSync(exec.runLog, 'utf8').trim().split('\n').length, 2);
  });

  it('a failing exec plugin: ServiceUnavailableException, and a log line naming the kubeconfig, the plugin and what it printed', async () => {
    const { token } = await podWithToken('web-4');
    const answer = await exchange('exec-fails', { token });
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.equal(answer.body.__type, 'ServiceUnavailableException');
    const expected = `${failingExec.path}: the exec credential plugin ${failingExec.command} failed: error: the SSO session has expired; run: login`;
    const logged = () =>
      server
        .logs()
        .split('\n')
        .filter((line) => line.includes('TokenReview failed'))
        .map((line) => (JSON.parse(line) as { err?: string }).err);
    // the server writes its log in batches
    await eventually('the TokenReview failure logged', () => logged().includes(expected), { timeoutMs: 5_000, context: () => JSON.stringify(logged()) });
  });
});
