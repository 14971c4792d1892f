// Session tags that read pod labels (`{{pod.labels.team}}`), on a real
// kube-apiserver: the server reads the labels of the token's pod through the
// cluster's API (JWKS mode with a kubeconfig, and TokenReview mode) and sends
// them to STS (moto, behind the recording proxy). A pod without the label is
// refused, naming it; a relabelled pod's next session has the new value.
import assert from 'node:assert/strict';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createAssociation, signedPost } from '../helpers/signed-post.js';
import { NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { createNode, createPod, createServiceAccount, requestPodToken } from '../peers/kube-api.js';
import { kubeApiClient, kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { awsQuery, motoMissingReason, startMoto, type MotoServer } from '../peers/moto.js';
import { requirePeer } from '../peers/require.js';
import { startStsRecorder, tagsOf, type StsRecorder } from '../peers/sts-recorder.js';

const skip = requirePeer('kube-apiserver', kubeMissingReason) || requirePeer('moto', motoMissingReason);
const CLUSTERS = ['jwks', 'review'] as const;

describe('session tags from pod labels, on a real kube-apiserver', { skip, timeout: 300_000 }, () => {
  let kube: KubeControlPlane;
  let moto: MotoServer;
  let recorder: StsRecorder;
  let server: ServerProcess;

  before(async () => {
    [kube, moto] = await Promise.all([startKubeControlPlane(), startMoto()]);
    recorder = await startStsRecorder(moto.endpoint);
    await awsQuery(moto, 'iam', 'CreateRole', {
      RoleName: 'team',
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${moto.accountId}:root` }, Action: ['sts:AssumeRole', 'sts:TagSession'] }] }),
    });
    await createServiceAccount(kube, 'default', 'app');
    await createNode(kube, 'node-1');
    server = await startServerProcess({
      config: {
        region: 'us-east-1',
        accountId: moto.accountId,
        clusters: [
          { name: 'jwks', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath, tokenReview: false },
          { name: 'review', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath, tokenReview: true },
        ],
        issuer: { type: 'aws-sts', stsEndpoint: recorder.endpoint, iamEndpoint: moto.endpoint, region: moto.region },
      },
      env: { AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
    });
    for (const cluster of CLUSTERS) {
      // a pattern association, so the labels of any app-* service account's pods count
      await createAssociation(server.apiUrl, cluster, { namespace: 'default', serviceAccount: 'app*', roleArn: `arn:aws:iam::${moto.accountId}:role/team`, sessionTags: { team: '{{pod.labels.team}}', tier: 'web-{{pod.labels.app.kubernetes.io/tier}}' } });
    }
  });

  after(async () => {
    if (process.env.SHOW_SERVER_LOGS) console.error(server?.logs());
    await server?.stop();
    await recorder?.stop();
    await Promise.all([kube?.stop(), moto?.stop()]);
  });

  beforeEach(() => {
    recorder.assumeRoles.length = 0;
  });

  async function podWithToken(name: string, labels: Record<string, string>) {
    const pod = await createPod(kube, { namespace: 'default', name, serviceAccountName: 'app', labels, spec: { nodeName: 'node-1' } });
    const { token } = await requestPodToken(kube, { namespace: 'default', serviceAccount: 'app', podName: name, podUid: pod.metadata!.uid! });
    return token;
  }

  const exchange = (cluster: string, token: string) => signedPost(new URL(`/clusters/${cluster}/assume-role-for-pod-identity`, server.apiUrl), { token, eksNodeName: 'node-1' }, NODE, 'eks-auth');

  it("sends the pod's labels as session tags, in JWKS and TokenReview modes", async () => {
    const token = await podWithToken('labelled', { team: 'payments', 'app.kubernetes.io/tier': 'frontend' });
    for (const cluster of CLUSTERS) {
      const answer = await exchange(cluster, token);
      assert.equal(answer.status, 200, `${cluster}: ${JSON.stringify(answer.body)}`);
      const tags = tagsOf(recorder.assumeRoles.at(-1)!);
      assert.equal(tags.team, 'payments', cluster);
      assert.equal(tags.tier, 'web-frontend', cluster);
      assert.equal(tags['kubernetes-pod-name'], 'labelled', cluster);
    }
  });

  it('a pod without the label is refused, naming the label, and STS is never asked', async () => {
    const token = await podWithToken('unlabelled', { 'app.kubernetes.io/tier': 'frontend' });
    for (const cluster of CLUSTERS) {
      const answer = await exchange(cluster, token);
      assert.equal(answer.status, 400, `${cluster}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.__type, 'InvalidRequestException');
      assert.equal(answer.body.message, 'Session tag team needs label team, which pod unlabelled does not have.');
    }
    assert.equal(recorder.assumeRoles.length, 0);
  });

  it("a relabelled pod's next session carries the new label", async () => {
    const token = await podWithToken('moving', { team: 'payments', 'app.kubernetes.io/tier': 'frontend' });
    assert.equal((await exchange('jwks', token)).status, 200);
    await kubeApiClient(kube, CoreV1Api).patchNamespacedPod({ namespace: 'default', name: 'moving', body: { metadata: { labels: { team: 'billing' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.equal((await exchange('jwks', token)).status, 200);
    assert.deepEqual(
      recorder.assumeRoles.map((form) => tagsOf(form).team),
      ['payments', 'billing'],
    );
  });
});
