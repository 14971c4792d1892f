// The whole path on a real Kubernetes API server, with moto as AWS STS/IAM:
// `pod-identity server` (association API, EKS Auth, webhook) and
// `pod-identity agent` as separate processes; the association made with
// @aws-sdk/client-eks; the API server calls the webhook registered from
// `pod-identity webhook-config`; the pod's projected token comes from a
// TokenRequest bound to the pod, as the kubelet makes it; a child process with
// exactly the pod's injected environment, in a network namespace where the
// agent serves 169.254.170.23 and with the token at the injected path, gets
// its role session through the AWS SDK for JavaScript's default chain.
// Deleting the pod revokes it; deleting the association stops the mutation.
//
// Topology: kube-apiserver, etcd and the server's webhook on the test's
// loopback; the server's API and moto on the test's end of a veth pair; the
// agent and the pod's process in the namespace at the other end (the node's
// agent and the pod share the node's link-local address, as on EKS).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CreatePodIdentityAssociationCommand, DeletePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import type { V1MutatingWebhookConfiguration, V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml, stringify } from 'yaml';
import { signRequest } from '../../src/lib/sigv4.js';
import { eventually } from '../helpers/eventually.js';
import { ADMIN, CLI, NODE, freePort, waitForHttp } from '../helpers/server-process.js';
import {
  createMutatingWebhookConfiguration,
  createNamespace,
  createNode,
  createPod,
  createServiceAccount,
  deletePod,
  requestPodToken,
} from '../peers/kube-api.js';
import { EKS_AUDIENCE, kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { createRole, createUserWithAccessKey, motoMissingReason, startMoto, trustPolicyFor, type MotoServer } from '../peers/moto.js';
import { registerTempDir, spawnPeer, tail, type PeerProcess } from '../peers/processes.js';
import { requirePeer } from '../peers/require.js';
import { createPodNetwork, podNetworkMissingReason, runInPod, type PodNetwork } from './pod-network.js';

const skip = requirePeer('kube-apiserver', kubeMissingReason) || requirePeer('moto', motoMissingReason) || requirePeer('network namespaces', podNetworkMissingReason);

const CLUSTER = 'e2e';
const NAMESPACE = 'shop';
const SERVICE_ACCOUNT = 'checkout';
const NODE_NAME = 'node-1';
const ROLE_NAME = 'checkout-role';
const FULL_URI = 'http://169.254.170.23/v1/credentials';
const TOKEN_DIR = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount';
const TOKEN_FILE = `${TOKEN_DIR}/eks-pod-identity-token`;
const CREDENTIAL_VARIABLES = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN'];

/**
 * The pod's program: the default chain of the AWS SDK for JavaScript (no
 * credentials passed), STS from AWS_ENDPOINT_URL_STS. It also reports what it
 * read at the token path, to show the injected path served the pod's token.
 */
const POD_PROGRAM = `
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
const tokenFile = process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
const tokenSha256 = createHash('sha256').update(readFileSync(tokenFile)).digest('hex');
try {
  const sts = new STSClient({ maxAttempts: 1 });
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  const credentials = await sts.config.credentials();
  console.log(JSON.stringify({ ok: true, arn: identity.Arn, account: identity.Account, accessKeyId: credentials.accessKeyId, tokenSha256 }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, name: error.name, message: error.message, tokenSha256 }));
  process.exitCode = 3;
}
`;

interface PodAnswer {
  ok: boolean;
  arn?: string;
  account?: string;
  accessKeyId?: string;
  name?: string;
  message?: string;
  tokenSha256: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Waits for a peer's /readyz, failing at once when it exits first. */
async function waitReady(peer: PeerProcess, url: string): Promise<void> {
  const exitedFirst = peer.exited.then((code) => {
    throw new Error(`${peer.name} exited (${String(code)}) before it was ready:\n${tail(peer.logs())}`);
  });
  exitedFirst.catch(() => undefined); // an exit after readiness is not an error
  await Promise.race([waitForHttp(url, 20_000), exitedFirst]);
}

describe('end to end: real kube-apiserver, moto STS, server and agent processes, a pod’s process in its own namespaces', { skip, timeout: 300_000 }, () => {
  let net: PodNetwork | undefined;
  let kube: KubeControlPlane | undefined;
  let moto: MotoServer | undefined;
  let server: PeerProcess | undefined;
  let agent: PeerProcess | undefined;
  let eks: EKSClient | undefined;
  let dir: string;
  let removeDir: (() => void) | undefined;
  let tokenDir: string;
  let apiUrl: string;
  let roleArn: string;
  let associationId: string;
  let pod: V1Pod;
  /** a second token of the same pod, never shown to the agent until the pod is gone */
  let unusedToken: string;
  let firstToken: string;
  let podEnv: Record<string, string>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pod-identity-e2e-'));
    removeDir = registerTempDir(dir);
    tokenDir = join(dir, 'pod-token');
    mkdirSync(tokenDir, { mode: 0o755 });
    net = createPodNetwork('pi-e2e');
    [kube, moto] = await Promise.all([startKubeControlPlane(), startMoto({ host: net.hostAddress })]);
  });

  after(async () => {
    eks?.destroy();
    // processes first: a process inside the namespace keeps it alive
    await agent?.stop(5_000);
    await server?.stop(5_000);
    if (process.env.SHOW_E2E_LOGS) console.error(`--- server\n${server?.logs()}\n--- agent\n${agent?.logs()}`);
    net?.destroy();
    await Promise.all([moto?.stop(), kube?.stop()]);
    removeDir?.();
  });

  test('server and agent start as separate processes; the webhook is registered from `pod-identity webhook-config`', async (t) => {
    assert.ok(kube && moto && net);
    const started = Date.now();
    // AWS side: the server's own principal, and a role that trusts it
    const principal = await createUserWithAccessKey(moto, 'pod-identity-server');
    roleArn = (await createRole(moto, { roleName: ROLE_NAME, trustPolicy: trustPolicyFor(principal.arn) })).arn;

    // cluster side: namespace, service account, and the node the pod runs on
    await createNamespace(kube, NAMESPACE);
    await createServiceAccount(kube, NAMESPACE, SERVICE_ACCOUNT);
    await createServiceAccount(kube, NAMESPACE, 'cart');
    await createNode(kube, NODE_NAME);

    const [apiPort, webhookPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    apiUrl = `http://${net.hostAddress}:${apiPort}`;
    const configPath = join(dir, 'server.yaml');
    writeFileSync(
      configPath,
      stringify({
        listen: `${net.hostAddress}:${apiPort}`,
        webhookListen: `127.0.0.1:${webhookPort}`,
        metricsListen: `127.0.0.1:${metricsPort}`,
        region: moto.region,
        accountId: moto.accountId,
        dataDir: join(dir, 'data'),
        logLevel: 'info',
        admins: [ADMIN],
        nodes: [{ ...NODE, clusters: [CLUSTER] }],
        // TokenReview through the kubeconfig: the API server also refuses tokens of deleted pods
        clusters: [{ name: CLUSTER, issuer: kube.issuer, kubeconfig: kube.kubeconfigPath, requireNodeBinding: true }],
        issuer: { type: 'aws-sts', stsEndpoint: moto.endpoint, region: moto.region, durationSeconds: 3600 },
      }),
    );
    server = spawnPeer('pod-identity server', process.execPath, [CLI, 'server', '--config', configPath], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ACCESS_KEY_ID: principal.accessKeyId,
        AWS_SECRET_ACCESS_KEY: principal.secretAccessKey,
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    });
    await waitReady(server, `http://127.0.0.1:${metricsPort}/readyz`);

    // the node: link-local addresses by `pod-identity initialize`, then the agent on them (port 80)
    const [ip, ...initializeArgs] = net.exec([process.execPath, CLI, 'initialize']);
    const initialize = await promisify(execFile)(ip!, initializeArgs, { timeout: 30_000 });
    assert.match(initialize.stdout, /configured pod-id-link0/);
    const probePort = await freePort();
    const [command, ...args] = net.exec([
      process.execPath, CLI, 'agent',
      '--cluster-name', CLUSTER,
      '--endpoint', apiUrl,
      '--allow-insecure-http-endpoint', // TLS between agent and server: test/integration/agent-tls.test.ts
      '--node-name', NODE_NAME,
      '--probe-address', net.podAddress,
      '--probe-port', String(probePort),
      '--metrics-address', net.podAddress,
      '--metrics-port', String(await freePort()),
    ]); // prettier-ignore
    agent = spawnPeer('pod-identity agent', command!, args, {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ACCESS_KEY_ID: NODE.accessKeyId,
        AWS_SECRET_ACCESS_KEY: NODE.secretAccessKey,
        AWS_REGION: moto.region,
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    });
    await waitReady(agent, `http://${net.podAddress}:${probePort}/readyz`);
    assert.match(agent.logs(), /169\.254\.170\.23/);

    // the API server calls the server's webhook, registered as the operator would
    const printed = await promisify(execFile)(process.execPath, [CLI, 'webhook-config', '--config', configPath, '--url', `https://127.0.0.1:${webhookPort}/mutate`], { timeout: 30_000 });
    assert.equal(printed.stderr, '', 'the serving certificate covers the URL');
    await createMutatingWebhookConfiguration(kube, parseYaml(printed.stdout) as V1MutatingWebhookConfiguration);
    t.diagnostic(`server, agent and webhook registration ready in ${Date.now() - started} ms`);
  });

  test('the association is made with @aws-sdk/client-eks, and the next pod is mutated as EKS does', async (t) => {
    assert.ok(kube && server && agent, 'previous step');
    eks = new EKSClient({ endpoint: apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    const created = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: CLUSTER, namespace: NAMESPACE, serviceAccount: SERVICE_ACCOUNT, roleArn }));
    associationId = created.association!.associationId!;
    assert.match(associationId, /^a-[a-z0-9]{17}$/);

    // the API server picks up a new webhook configuration within a moment: dry-run pods until it calls it
    const registered = Date.now();
    for (;;) {
      const probe = await createPod(kube, { namespace: NAMESPACE, name: 'probe', serviceAccountName: SERVICE_ACCOUNT, dryRun: true });
      if (probe.metadata?.labels?.['eks.amazonaws.com/pod-identity'] === 'enabled') break;
      if (Date.now() - registered > 20_000) assert.fail(`the API server did not call the webhook in 20 s:\n${tail(server.logs())}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    t.diagnostic(`webhook active after ${Date.now() - registered} ms`);

    pod = await createPod(kube, { namespace: NAMESPACE, name: 'checkout-1', serviceAccountName: SERVICE_ACCOUNT, spec: { nodeName: NODE_NAME } });
    assert.equal(pod.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled');
    const volume = pod.spec!.volumes!.find((v) => v.name === 'eks-pod-identity-token');
    assert.ok(volume, 'the token volume is added');
    const source = volume.projected?.sources?.[0]?.serviceAccountToken;
    assert.deepEqual({ ...source, expirationSeconds: undefined }, { audience: EKS_AUDIENCE, expirationSeconds: undefined, path: 'eks-pod-identity-token' });
    // The default lifetime, jittered as EKS does it.
    assert.ok(source!.expirationSeconds! >= 79200 && source!.expirationSeconds! <= 86400, String(source!.expirationSeconds));
    const [container] = pod.spec!.containers;
    const env = Object.fromEntries(container!.env!.map((e) => [e.name, e.value!]));
    assert.equal(env.AWS_CONTAINER_CREDENTIALS_FULL_URI, FULL_URI);
    assert.equal(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, TOKEN_FILE);
    assert.deepEqual(
      container!.volumeMounts!.find((m) => m.name === 'eks-pod-identity-token'),
      { name: 'eks-pod-identity-token', mountPath: TOKEN_DIR, readOnly: true },
    );
    for (const name of CREDENTIAL_VARIABLES) assert.equal(env[name], undefined, `${name} is not injected`);
    podEnv = env;
  });

  test('a process with exactly the pod’s environment gets the role session from moto through the agent', async (t) => {
    assert.ok(kube && moto && net && podEnv, 'previous step');
    // what the kubelet does for the projected volume: a TokenRequest bound to the pod, with the volume's audience and expiration
    const volume = pod.spec!.volumes!.find((v) => v.name === 'eks-pod-identity-token')!;
    const source = volume.projected!.sources![0]!.serviceAccountToken!;
    const mount = pod.spec!.containers[0]!.volumeMounts!.find((m) => m.name === volume.name)!;
    const tokenFor = async () =>
      (
        await requestPodToken(kube!, {
          namespace: NAMESPACE,
          serviceAccount: pod.spec!.serviceAccountName!,
          podName: pod.metadata!.name!,
          podUid: pod.metadata!.uid!,
          audience: source.audience!,
          expirationSeconds: source.expirationSeconds!,
        })
      ).token;
    firstToken = await tokenFor();
    unusedToken = await tokenFor();
    const claims = JSON.parse(Buffer.from(firstToken.split('.')[1]!, 'base64url').toString()) as { aud: string[]; exp: number; iat: number; 'kubernetes.io': { pod: { uid: string }; node?: { name: string } } };
    assert.deepEqual(claims.aud, [EKS_AUDIENCE]);
    assert.equal(claims.exp - claims.iat, source.expirationSeconds);
    assert.equal(claims['kubernetes.io'].pod.uid, pod.metadata!.uid);
    assert.equal(claims['kubernetes.io'].node?.name, NODE_NAME);
    writeFileSync(join(tokenDir, source.path!), firstToken, { flag: 'w', mode: 0o644 });
    // the injected variable names the file the volume puts at the mount path, unchanged
    assert.equal(podEnv.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, posix.join(mount.mountPath, source.path!));

    const started = Date.now();
    const answer = await runPodProgram();
    t.diagnostic(`pod process: token → agent → server → moto STS → GetCallerIdentity in ${Date.now() - started} ms`);
    assert.equal(answer.ok, true, JSON.stringify(answer));
    assert.equal(answer.tokenSha256, sha256(firstToken), 'the pod read its own token at the injected path');
    assert.match(answer.arn!, new RegExp(`^arn:aws:sts::${moto.accountId}:assumed-role/${ROLE_NAME}/eks-${CLUSTER}-checkout-1-`));
    assert.equal(answer.account, moto.accountId);
    assert.match(answer.accessKeyId!, /^ASIA/);
  });

  test('deleting the pod: fresh credential requests are refused within 60 s', async (t) => {
    assert.ok(kube && moto && firstToken && unusedToken, 'previous step');
    await deletePod(kube, NAMESPACE, 'checkout-1');
    const deleted = Date.now();

    // past the agent's cache: EKS Auth called directly with the pod's token, signed with the node key
    const url = new URL(`/clusters/${CLUSTER}/assume-role-for-pod-identity`, apiUrl);
    const exchange = async () => {
      const body = JSON.stringify({ token: firstToken, eksNodeName: NODE_NAME });
      const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: moto!.region, service: 'eks-auth' });
      const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
      return { status: res.status, body: (await res.json()) as { __type?: string; message?: string } };
    };
    const refused = await eventually(
      'EKS Auth refuses the deleted pod’s token',
      async () => {
        const answer = await exchange();
        return answer.status !== 200 ? answer : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    const directMs = Date.now() - deleted;
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.__type, 'InvalidTokenException', JSON.stringify(refused.body));

    // through the agent: a token of the deleted pod it has never cached, at the pod's path
    writeFileSync(join(tokenDir, 'eks-pod-identity-token'), unusedToken);
    const agentLogBefore = agent!.logs().length;
    const answer = await runPodProgram();
    const agentMs = Date.now() - deleted;
    t.diagnostic(`refused after deletion: EKS Auth directly ${directMs} ms, through the agent (cache miss) ${agentMs} ms`);
    assert.equal(answer.ok, false, `the pod process still got credentials: ${JSON.stringify(answer)}`);
    assert.equal(answer.tokenSha256, sha256(unusedToken));
    // the SDK reports its chain's last provider; the agent's log shows why it refused
    assert.equal(answer.name, 'CredentialsProviderError', JSON.stringify(answer));
    assert.match(agent!.logs().slice(agentLogBefore), /"outcome":"InvalidTokenException","status":400/);
    assert.ok(agentMs < 60_000, `refused only ${agentMs} ms after deletion`);
  });

  test('deleting the association: new pods are not mutated', async () => {
    assert.ok(kube && eks && associationId, 'previous step');
    await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: CLUSTER, associationId }));
    for (const [name, serviceAccount] of [
      ['checkout-2', SERVICE_ACCOUNT],
      ['cart-1', 'cart'],
    ]) {
      const created = await createPod(kube, { namespace: NAMESPACE, name: name!, serviceAccountName: serviceAccount, spec: { nodeName: NODE_NAME } });
      assert.equal(created.metadata?.labels?.['eks.amazonaws.com/pod-identity'], undefined, name);
      assert.equal(created.spec!.volumes?.find((v) => v.name === 'eks-pod-identity-token'), undefined, name);
      const [container] = created.spec!.containers;
      assert.equal(container!.env?.find((e) => e.name.startsWith('AWS_CONTAINER_')), undefined, name);
      assert.equal(container!.volumeMounts?.find((m) => m.name === 'eks-pod-identity-token'), undefined, name);
    }
  });

  /** The pod's program, in the pod's network namespace, its token directory at the mount path, with exactly its environment. */
  async function runPodProgram(): Promise<PodAnswer> {
    const env: Record<string, string> = {
      ...podEnv,
      // not part of the pod spec, but no credentials either: where the program and its STS live
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      AWS_ENDPOINT_URL_STS: moto!.endpoint,
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    };
    for (const name of CREDENTIAL_VARIABLES) assert.equal(env[name], undefined);
    const result = await runInPod(net!, { directory: tokenDir, mountPath: TOKEN_DIR }, [process.execPath, '--input-type=module', '-e', POD_PROGRAM], env, { cwd: process.cwd(), timeoutMs: 60_000 });
    const line = result.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as PodAnswer;
    } catch {
      throw new Error(`pod program (exit ${result.code}) printed no answer:\n${result.stdout}\n${result.stderr}\n--- agent\n${tail(agent?.logs() ?? '')}`);
    }
  }
});
