// What an operator installs, on a real one-node cluster (test/peers/node-cluster.ts):
// the image built from deploy/Dockerfile, the Helm chart installed with it
// (server Deployment, its Service, the MutatingWebhookConfiguration, the agent
// DaemonSet with its `initialize` init container on the host network), moto as
// AWS STS/IAM on the node. An association made with @aws-sdk/client-eks; a pod
// whose container is an unmodified AWS SDK for JavaScript program
// (test/e2e/sdk-image) is mutated by the webhook through its Service, gets its
// token projected by the kubelet, and prints the assumed-role ARN from
// GetCallerIdentity. Then: rolling the agent DaemonSet, the pod keeps getting
// credentials; deleting the pod, its token stops working within 60 s;
// deleting the association, a new pod is not mutated.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, DeletePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { AppsV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent as HttpsAgent } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { signRequest } from '../../src/lib/sigv4.js';
import { eventually, GiveUp, type Check } from '../helpers/eventually.js';
import { buildImage, PRODUCT_IMAGE, type BuiltImage } from '../peers/images.js';
import { createNamespace, createPod, createServiceAccount, getPod, runKubeTool } from '../peers/kube-api.js';
import { EKS_AUDIENCE, kubeApiClient } from '../peers/kube.js';
import { createRole, createUserWithAccessKey, MOTO_ACCOUNT_ID, trustPolicyFor, type AwsCredentials } from '../peers/moto.js';
import { componentLogs, NODE_IP, nodeClusterMissingReason, startNodeCluster, type NodeCluster } from '../peers/node-cluster.js';
import { waitUntil, type PeerProcess } from '../peers/processes.js';
import { isolatedAwsEnv, pythonPeersMissingReason, venvBinary } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';

const skip = requirePeer('real node', nodeClusterMissingReason) || requirePeer('moto', pythonPeersMissingReason);

const CHART = resolve('deploy/helm/pod-identity');
const RELEASE = 'pi';
const SYSTEM_NAMESPACE = 'pod-identity';
const FULLNAME = 'pi-pod-identity';
const CLUSTER = 'real-node';
const NAMESPACE = 'shop';
const SERVICE_ACCOUNT = 'checkout';
const ROLE_NAME = 'checkout-role';
const REGION = 'us-east-1';
const MOTO_PORT = 5000;
const STS_ENDPOINT = `http://${NODE_IP}:${MOTO_PORT}`;
const ADMIN = { accessKeyId: 'AKIAREALNODEADMIN01', secretAccessKey: 'real-node-admin-secret' };
const NODE_KEY = { accessKeyId: 'AKIAREALNODENODE001', secretAccessKey: 'real-node-node-secret' };
const TOKEN_DIR = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount';
const TOKEN_VOLUME = 'eks-pod-identity-token';
const SDK_IMAGE = { name: 'pod-identity-e2e-sdk', dockerfile: 'test/e2e/sdk-image/Dockerfile', context: 'test/e2e/sdk-image', inputs: ['test/e2e/sdk-image'] };

interface ProgramLine {
  attempt: number;
  at: string;
  ok: boolean;
  arn?: string;
  account?: string;
  accessKeyId?: string;
  name?: string;
  message?: string;
  tokenSha256?: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('real node: the image and the chart on a one-node cluster, a pod’s unmodified AWS SDK program gets its role session', { skip, timeout: 1_500_000 }, () => {
  let cluster: NodeCluster | undefined;
  let moto: PeerProcess | undefined;
  let eks: EKSClient | undefined;
  let product: BuiltImage;
  let sdk: BuiltImage;
  let motoEndpoint: string;
  let apiEndpoint: string;
  let apiDispatcher: UndiciAgent | undefined;
  let roleArn: string;
  let associationId: string;
  let podToken: string;
  const timings: string[] = [];
  const suiteStarted = Date.now();

  const kubectl = async (args: string[], timeoutMs = 120_000) => (await runKubeTool('kubectl', cluster!, args, { timeoutMs })).stdout;
  const podsOf = async (namespace: string, selector: string) =>
    (await kubeApiClient(cluster!, CoreV1Api).listNamespacedPod({ namespace, labelSelector: selector })).items;
  const programLines = async (namespace: string, pod: string): Promise<ProgramLine[]> => {
    const res = await runKubeTool('kubectl', cluster!, ['logs', '-n', namespace, pod], { timeoutMs: 30_000 }).catch(() => ({ stdout: '' }));
    return res.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as ProgramLine);
  };
  /** Polls `check` every second; a failure names `what` and ends with the node's logs. */
  const eventuallyOnNode = <T>(what: string, timeoutMs: number, check: Check<T>): Promise<T> =>
    eventually(what, check, { timeoutMs, intervalMs: 1_000, context: () => componentLogs(cluster!, ['kubelet', 'containerd'], 15) });
  const sdkPod = (name: string, env: Record<string, string> = {}) =>
    createPod(cluster!, {
      namespace: NAMESPACE,
      name,
      serviceAccountName: SERVICE_ACCOUNT,
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 5,
        containers: [
          {
            name: 'app',
            image: sdk.ref,
            imagePullPolicy: 'Never',
            // what the pod's own spec says; the webhook adds the credential variables
            env: [
              { name: 'AWS_REGION', value: REGION },
              { name: 'AWS_ENDPOINT_URL_STS', value: STS_ENDPOINT },
              ...Object.entries(env).map(([name, value]) => ({ name, value })),
            ],
          },
        ],
      },
    });

  before(async () => {
    let t = Date.now();
    product = await buildImage(PRODUCT_IMAGE);
    sdk = await buildImage(SDK_IMAGE);
    timings.push(`images ${product.built || sdk.built ? 'built' : 'reused'} in ${Date.now() - t} ms (${[product.summary, sdk.summary].filter(Boolean).join('; ') || 'cached archives'})`);
    cluster = await startNodeCluster();
    timings.push(`node Ready in ${cluster.startMs} ms`);
    t = Date.now();
    await cluster.importImage(product.archive);
    await cluster.importImage(sdk.archive);
    timings.push(`images imported in ${Date.now() - t} ms`);
    // moto on the node's address: the server's STS and the pod's
    moto = cluster.spawn('moto', venvBinary('moto_server'), ['-H', NODE_IP, '-p', String(MOTO_PORT)], isolatedAwsEnv({ MOTO_ACCOUNT_ID }));
    motoEndpoint = `http://127.0.0.1:${await cluster.forward(NODE_IP, MOTO_PORT)}`;
    await waitUntil(moto, 'an HTTP answer', 60_000, async () => (await fetch(`${motoEndpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) })).status === 200);
  });

  after(async () => {
    eks?.destroy();
    await apiDispatcher?.close();
    if (process.env.SHOW_E2E_LOGS && cluster) console.error(componentLogs(cluster, undefined, 80));
    const started = Date.now();
    const left = (await cluster?.stop()) ?? [];
    timings.push(`teardown in ${Date.now() - started} ms`, `whole suite ${Date.now() - suiteStarted} ms`);
    console.error(`# real node timings: ${timings.join('; ')}`);
    assert.deepEqual(left, [], 'the node left nothing behind');
  });

  test('helm install: the chart with the built image runs the server and the agent DaemonSet, whose init container put 169.254.170.23 on the node', async (t) => {
    assert.ok(cluster);
    const started = Date.now();
    const aws = { endpoint: motoEndpoint, region: REGION, credentials: { accessKeyId: 'AKIAMOTOROOT', secretAccessKey: 'moto-root' } as AwsCredentials };
    const principal = await createUserWithAccessKey(aws, 'pod-identity-server');
    roleArn = (await createRole(aws, { roleName: ROLE_NAME, trustPolicy: trustPolicyFor(principal.arn) })).arn;

    await kubectl(['create', 'namespace', SYSTEM_NAMESPACE]);
    await kubectl(['create', 'secret', 'generic', 'pod-identity-aws', '-n', SYSTEM_NAMESPACE, `--from-literal=AWS_ACCESS_KEY_ID=${principal.accessKeyId}`, `--from-literal=AWS_SECRET_ACCESS_KEY=${principal.secretAccessKey}`]);
    const values = [
      `image.repository=${product.repository}`,
      `image.tag=${product.tag}`,
      'image.pullPolicy=Never',
      `clusterName=${CLUSTER}`,
      `region=${REGION}`,
      `accountId=${MOTO_ACCOUNT_ID}`,
      'server.persistence.enabled=false',
      'server.issuer.type=aws-sts',
      `server.issuer.stsEndpoint=${STS_ENDPOINT}`,
      'server.awsCredentialsSecret=pod-identity-aws',
      `server.serviceAccountIssuer=${cluster.serviceAccountIssuer}`,
      `server.nodeKey.accessKeyId=${NODE_KEY.accessKeyId}`,
      `server.nodeKey.secretAccessKey=${NODE_KEY.secretAccessKey}`,
      `server.admins[0].accessKeyId=${ADMIN.accessKeyId}`,
      `server.admins[0].secretAccessKey=${ADMIN.secretAccessKey}`,
    ];
    try {
      await runKubeTool('helm', cluster, ['install', RELEASE, CHART, '-n', SYSTEM_NAMESPACE, ...values.flatMap((v) => ['--set', v])], { timeoutMs: 120_000 });
    } catch (error) {
      assert.fail(`helm install failed: ${(error as Error).message}`);
    }
    // ready, or failing at once with the reason when a pod of the release cannot start
    await eventuallyOnNode('the server Deployment available and the agent DaemonSet ready', 240_000, async () => {
      for (const pod of await podsOf(SYSTEM_NAMESPACE, `app.kubernetes.io/instance=${RELEASE}`)) {
        for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
          const waiting = status.state?.waiting;
          const failed = status.lastState?.terminated ?? (status.state?.terminated?.exitCode ? status.state.terminated : undefined);
          if ((waiting && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') || failed) {
            const logs = await kubectl(['logs', '-n', SYSTEM_NAMESPACE, pod.metadata!.name!, '-c', status.name, ...(status.lastState?.terminated ? ['--previous'] : []), '--tail=20']).catch((e: Error) => e.message);
            throw new GiveUp(`pod ${pod.metadata!.name} container ${status.name} cannot run: ${JSON.stringify(waiting ?? failed)}\n${logs}`);
          }
        }
      }
      const apps = kubeApiClient(cluster!, AppsV1Api);
      const deployment = await apps.readNamespacedDeployment({ namespace: SYSTEM_NAMESPACE, name: `${FULLNAME}-server` });
      const daemonSet = await apps.readNamespacedDaemonSet({ namespace: SYSTEM_NAMESPACE, name: `${FULLNAME}-agent` });
      return (deployment.status?.availableReplicas ?? 0) >= 1 && (daemonSet.status?.numberReady ?? 0) >= 1 ? true : undefined;
    });
    t.diagnostic(`helm install until ready: ${Date.now() - started} ms`);
    timings.push(`helm install ${Date.now() - started} ms`);

    // the agent: the chart's DaemonSet pod, on the host network, after its init container succeeded
    const [agent] = await podsOf(SYSTEM_NAMESPACE, 'app.kubernetes.io/component=agent');
    assert.ok(agent, 'an agent pod');
    assert.equal(agent.spec?.hostNetwork, true);
    assert.equal(agent.spec?.containers[0]?.image, product.ref);
    const init = agent.status?.initContainerStatuses?.find((s) => s.name === 'initialize');
    assert.equal(init?.state?.terminated?.exitCode, 0, `init container: ${JSON.stringify(init?.state)}`);
    const link = await cluster.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'pod-id-link0']);
    assert.match(link.stdout, /inet 169\.254\.170\.23\/32/, `the node's pod-id-link0: ${link.stdout}${link.stderr}`);
    const [server] = await podsOf(SYSTEM_NAMESPACE, 'app.kubernetes.io/component=server');
    assert.equal(server?.status?.phase, 'Running');
    assert.equal(server?.spec?.containers[0]?.image, product.ref);
  });

  test('an association made with @aws-sdk/client-eks through the server’s Service', async () => {
    assert.ok(cluster && roleArn, 'previous step');
    const service = await kubeApiClient(cluster, CoreV1Api).readNamespacedService({ namespace: SYSTEM_NAMESPACE, name: `${FULLNAME}-server` });
    // The chart serves the API over TLS (server.tls.enabled): trust the CA it
    // publishes for the agents, and check the certificate against the Service's
    // name, as the agents do, though the connection goes through a port-forward.
    const caMap = await kubeApiClient(cluster, CoreV1Api).readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: `${FULLNAME}-ca` });
    const ca = caMap.data?.['ca.crt'];
    assert.ok(ca, 'the chart publishes the CA of the server certificate');
    const serverHost = `${FULLNAME}-server.${SYSTEM_NAMESPACE}.svc`;
    const verifyAsService = (_host: string, cert: PeerCertificate) => checkServerIdentity(serverHost, cert);
    apiEndpoint = `https://127.0.0.1:${await cluster.forward(service.spec!.clusterIP!, 8080)}`;
    apiDispatcher = new UndiciAgent({ connect: { ca, servername: serverHost, checkServerIdentity: verifyAsService } });
    const requestHandler = new NodeHttpHandler({ httpsAgent: new HttpsAgent({ ca, servername: serverHost, checkServerIdentity: verifyAsService }) });
    eks = new EKSClient({ endpoint: apiEndpoint, region: REGION, credentials: ADMIN, maxAttempts: 1, requestHandler });
    const created = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: CLUSTER, namespace: NAMESPACE, serviceAccount: SERVICE_ACCOUNT, roleArn }));
    associationId = created.association!.associationId!;
    assert.match(associationId, /^a-[a-z0-9]{17}$/);
    assert.equal(created.association?.roleArn, roleArn);
  });

  test('a pod of an unmodified SDK program: mutated through the webhook’s Service, its token projected by the kubelet, credentials from the agent', async (t) => {
    assert.ok(cluster && associationId, 'previous step');
    await createNamespace(cluster, NAMESPACE);
    await createServiceAccount(cluster, NAMESPACE, SERVICE_ACCOUNT);
    const started = Date.now();
    const pod = await sdkPod('checkout-1', { REPEAT_EVERY_MS: '2000' });

    // the API server called the webhook through its Service: the stored pod is mutated
    const webhookCalls = (cluster.components.get('kube-apiserver')?.logs() ?? '').split('\n').filter((line) => line.includes('webhook')).slice(-5).join('\n');
    assert.equal(pod.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled', `the webhook did not mutate the pod (unreachable through its Service?); the API server says:\n${webhookCalls}`);
    const volume = pod.spec!.volumes!.find((v) => v.name === TOKEN_VOLUME);
    const source = volume?.projected?.sources?.[0]?.serviceAccountToken;
    assert.equal(source?.audience, EKS_AUDIENCE);
    assert.equal(source?.path, TOKEN_VOLUME);
    const env = Object.fromEntries(pod.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    assert.equal(env.AWS_CONTAINER_CREDENTIALS_FULL_URI, 'http://169.254.170.23/v1/credentials');
    assert.equal(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, `${TOKEN_DIR}/${TOKEN_VOLUME}`);
    assert.equal(env.AWS_ACCESS_KEY_ID, undefined);

    // the program's first answer
    const first = await eventuallyOnNode('the pod’s first GetCallerIdentity', 120_000, async () => {
      const current = await getPod(cluster!, NAMESPACE, 'checkout-1');
      if (current.status?.phase === 'Failed' || current.status?.phase === 'Succeeded') {
        assert.fail(`the pod ended (${current.status.phase}): ${JSON.stringify(current.status.containerStatuses?.[0]?.state)}\n${await kubectl(['logs', '-n', NAMESPACE, 'checkout-1']).catch(() => '')}`);
      }
      return (await programLines(NAMESPACE, 'checkout-1'))[0];
    });
    t.diagnostic(`pod created → first GetCallerIdentity printed: ${Date.now() - started} ms`);
    timings.push(`first pod credentials ${Date.now() - started} ms`);
    assert.equal(first.ok, true, `the program failed: ${JSON.stringify(first)}\n--- agent\n${await kubectl(['logs', '-n', SYSTEM_NAMESPACE, '-l', 'app.kubernetes.io/component=agent', '--tail=20']).catch(() => '')}`);
    assert.match(first.arn!, new RegExp(`^arn:aws:sts::${MOTO_ACCOUNT_ID}:assumed-role/${ROLE_NAME}/eks-${CLUSTER}-checkout-1-`));
    assert.equal(first.account, MOTO_ACCOUNT_ID);
    assert.match(first.accessKeyId!, /^ASIA/);

    // the token the program read is the one the kubelet projected (TokenRequest bound to this pod on this node)
    const running = await getPod(cluster, NAMESPACE, 'checkout-1');
    podToken = cluster.readNodeFile(`/var/lib/kubelet/pods/${running.metadata!.uid}/volumes/kubernetes.io~projected/${TOKEN_VOLUME}/${TOKEN_VOLUME}`).trim();
    assert.equal(first.tokenSha256, sha256(podToken), 'the program read the kubelet’s token at the injected path');
    const claims = JSON.parse(Buffer.from(podToken.split('.')[1]!, 'base64url').toString()) as {
      iss: string;
      aud: string[];
      exp: number;
      iat: number;
      'kubernetes.io': { pod: { uid: string }; node?: { name: string } };
    };
    assert.equal(claims.iss, cluster.serviceAccountIssuer);
    assert.deepEqual(claims.aud, [EKS_AUDIENCE]);
    assert.equal(claims.exp - claims.iat, source!.expirationSeconds);
    assert.equal(claims['kubernetes.io'].pod.uid, running.metadata!.uid);
    assert.equal(claims['kubernetes.io'].node?.name, cluster.nodeName);
  });

  test('rolling the agent DaemonSet: the pod keeps getting credentials', async (t) => {
    assert.ok(cluster && podToken, 'previous step');
    const [before] = await podsOf(SYSTEM_NAMESPACE, 'app.kubernetes.io/component=agent');
    const started = Date.now();
    await kubectl(['rollout', 'restart', `daemonset/${FULLNAME}-agent`, '-n', SYSTEM_NAMESPACE]);
    await kubectl(['rollout', 'status', `daemonset/${FULLNAME}-agent`, '-n', SYSTEM_NAMESPACE, '--timeout=180s'], 200_000);
    const rolled = new Date();
    const [after] = await podsOf(SYSTEM_NAMESPACE, 'app.kubernetes.io/component=agent');
    assert.ok(after && after.metadata?.uid !== before?.metadata?.uid, 'a new agent pod');
    assert.equal(after.status?.initContainerStatuses?.find((s) => s.name === 'initialize')?.state?.terminated?.exitCode, 0, 'the new pod’s init container ran again on a node that has the link');
    const ds = await kubeApiClient(cluster, AppsV1Api).readNamespacedDaemonSet({ namespace: SYSTEM_NAMESPACE, name: `${FULLNAME}-agent` });
    assert.equal(ds.status?.numberReady, 1);

    // the same pod, same token: answers from the new agent (a new one has an empty cache, so it went to the server)
    const later = await eventuallyOnNode('a GetCallerIdentity after the roll', 60_000, async () => (await programLines(NAMESPACE, 'checkout-1')).find((line) => Date.parse(line.at) > rolled.getTime() && line.ok));
    const lines = await programLines(NAMESPACE, 'checkout-1');
    const failed = lines.filter((line) => !line.ok);
    t.diagnostic(`roll: ${Date.now() - started} ms; ${lines.length} calls so far, ${failed.length} failed while no agent ran (${failed.map((f) => f.name).join(', ') || 'none'})`);
    assert.match(later.arn!, new RegExp(`assumed-role/${ROLE_NAME}/eks-${CLUSTER}-checkout-1-`));
    assert.equal(later.tokenSha256, sha256(podToken));
  });

  test('deleting the pod: its token stops working within 60 s', async (t) => {
    assert.ok(cluster && apiEndpoint && podToken, 'previous step');
    await kubectl(['delete', 'pod', '-n', NAMESPACE, 'checkout-1', '--wait=true', '--timeout=60s'], 90_000);
    const deleted = Date.now();
    const url = new URL(`/clusters/${CLUSTER}/assume-role-for-pod-identity`, apiEndpoint);
    const exchange = async () => {
      const body = JSON.stringify({ token: podToken, eksNodeName: cluster!.nodeName });
      const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE_KEY, region: REGION, service: 'eks-auth' });
      const res = await undiciFetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000), dispatcher: apiDispatcher });
      return { status: res.status, body: (await res.json()) as { __type?: string; message?: string } };
    };
    const refused = await eventuallyOnNode("EKS Auth refuses the deleted pod's token", 60_000, async () => {
      const answer = await exchange();
      return answer.status !== 200 ? answer : undefined;
    });
    t.diagnostic(`the deleted pod's token refused by EKS Auth ${Date.now() - deleted} ms after deletion`);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.__type, 'InvalidTokenException', JSON.stringify(refused.body));
  });

  test('deleting the association: a new pod is not mutated and its program finds no credentials', async () => {
    assert.ok(cluster && eks && associationId, 'previous step');
    await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: CLUSTER, associationId }));
    const pod: V1Pod = await sdkPod('checkout-2');
    assert.equal(pod.metadata?.labels?.['eks.amazonaws.com/pod-identity'], undefined);
    assert.equal(pod.spec!.volumes?.find((v) => v.name === TOKEN_VOLUME), undefined);
    const container = pod.spec!.containers[0]!;
    assert.equal(container.env?.find((e) => e.name.startsWith('AWS_CONTAINER_')), undefined);
    assert.equal(container.volumeMounts?.find((m) => m.name === TOKEN_VOLUME), undefined);
    const [line] = await eventuallyOnNode('the unmutated pod’s answer', 120_000, async () => {
      const lines = await programLines(NAMESPACE, 'checkout-2');
      return lines.length > 0 ? lines : undefined;
    });
    assert.equal(line!.ok, false, JSON.stringify(line));
    assert.equal(line!.tokenSha256, undefined);
  });
});
