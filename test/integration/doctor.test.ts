// `pod-identity doctor` against real peers: a kube-apiserver (the webhook
// registered as `webhook-config` prints it, pods, TokenRequests), a
// `pod-identity server` process with the aws-sts issuer on moto (STS and IAM),
// and a `pod-identity agent` process. A healthy setup passes every check; each
// way the chain breaks stops doctor at the check that names it, with its fix
// and exit status 1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { eventually } from '../helpers/eventually.js';
import { applyYaml, createPod, createServiceAccount, deletePod } from '../peers/kube-api.js';
import { EKS_AUDIENCE, kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { createRole, createUserWithAccessKey, motoMissingReason, startMoto, trustPolicyFor, type MotoServer } from '../peers/moto.js';
import { requirePeer } from '../peers/require.js';
import { ADMIN, CLI, freePort, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { CLUSTER, startAgentProcess, type AgentProcess } from './agent-harness.js';

const run = promisify(execFile);
const skip = requirePeer('kube-apiserver', kubeMissingReason) || requirePeer('moto', motoMissingReason);
const NAMESPACE = 'default';
const TOKEN_DIR = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount';

interface Check {
  check: string;
  status: 'passed' | 'failed' | 'skipped';
  detail: string;
  fix?: string;
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  checks: Check[];
}

describe('pod-identity doctor on real peers', { skip, timeout: 240_000 }, () => {
  let kube: KubeControlPlane;
  let moto: MotoServer;
  let server: ServerProcess;
  let agent: AgentProcess;
  let eks: EKSClient;
  let trustedRole: string;
  let untrustedRole: string;
  let principalArn: string;

  /** Runs doctor as an operator would (node key, the cluster's kubeconfig, the agent's URL); `output` text or json. */
  async function doctor(serviceAccount: string, extra: string[] = [], output: 'json' | 'text' = 'json'): Promise<Outcome> {
    const args = [
      CLI, 'doctor',
      '-c', CLUSTER, '-n', NAMESPACE, '-s', serviceAccount,
      '--endpoint', server.apiUrl, '--region', moto.region,
      '--access-key-id', ADMIN.accessKeyId, '--secret-access-key', ADMIN.secretAccessKey,
      '--node-access-key-id', NODE.accessKeyId, '--node-secret-access-key', NODE.secretAccessKey,
      '--kubeconfig', kube.kubeconfigPath,
      '--agent-url', agent.url,
      '--output', output,
      ...extra,
    ]; // prettier-ignore
    const env = { ...process.env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true' };
    const done = await run(process.execPath, args, { timeout: 60_000, env }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
    );
    const checks = output === 'json' && done.stdout ? (JSON.parse(done.stdout) as { checks: Check[] }).checks : [];
    return { ...done, checks };
  }

  /** The last check that ran: doctor stops at the first failure. */
  function lastCheck(outcome: Outcome): Check {
    const last = outcome.checks.at(-1);
    assert.ok(last, `doctor printed checks: ${outcome.stdout}${outcome.stderr}`);
    return last;
  }

  before(async () => {
    [kube, moto] = await Promise.all([startKubeControlPlane(), startMoto()]);
    const principal = await createUserWithAccessKey(moto, 'pod-identity-server');
    principalArn = principal.arn;
    trustedRole = (await createRole(moto, { roleName: 'checkout-role', trustPolicy: trustPolicyFor(principal.arn) })).arn;
    // trusts someone else: moto issues credentials for it anyway (it does not evaluate trust), doctor's last check reads the policy
    untrustedRole = (await createRole(moto, { roleName: 'stranger-role', trustPolicy: trustPolicyFor(`arn:aws:iam::${moto.accountId}:user/someone-else`) })).arn;

    server = await startServerProcess({
      config: {
        region: moto.region,
        accountId: moto.accountId,
        clusters: [{ name: CLUSTER, issuer: kube.issuer, kubeconfig: kube.kubeconfigPath }],
        issuer: { type: 'aws-sts', stsEndpoint: moto.endpoint, iamEndpoint: moto.endpoint, region: moto.region, durationSeconds: 3600 },
      },
      env: {
        AWS_ACCESS_KEY_ID: principal.accessKeyId,
        AWS_SECRET_ACCESS_KEY: principal.secretAccessKey,
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    });
    agent = await startAgentProcess({ endpoint: server.apiUrl, env: { AWS_REGION: moto.region } });
    eks = new EKSClient({ endpoint: server.apiUrl, region: moto.region, credentials: { ...ADMIN }, maxAttempts: 1 });

    const { stdout } = await run(process.execPath, [CLI, 'webhook-config', '--config', server.configPath, '--url', server.webhookUrl, '--timeout-seconds', '5'], { timeout: 20_000 });
    await applyYaml(kube, stdout);
    for (const name of ['checkout', 'early', 'legacy', 'gone', 'stranger', 'nobody']) await createServiceAccount(kube, NAMESPACE, name);
    // a pod made before its association: the webhook had nothing to inject
    await createPod(kube, { namespace: NAMESPACE, name: 'early-1', serviceAccountName: 'early' });
    for (const [serviceAccount, roleArn] of [['checkout', trustedRole], ['early', trustedRole], ['legacy', trustedRole], ['gone', trustedRole], ['stranger', untrustedRole]] as const) {
      await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: CLUSTER, namespace: NAMESPACE, serviceAccount, roleArn }));
    }
    // the API server picks the webhook configuration up from its informer
    await eventually(
      'the webhook called',
      async () => (await createPod(kube, { namespace: NAMESPACE, name: 'probe', serviceAccountName: 'checkout', dryRun: true })).metadata?.labels?.['eks.amazonaws.com/pod-identity'] === 'enabled',
      { timeoutMs: 20_000, intervalMs: 200, context: () => server.logs() },
    );
  });

  after(async () => {
    eks?.destroy();
    await agent?.stop();
    await server?.stop();
    await Promise.all([moto?.stop(), kube?.stop()]);
  });

  test('a healthy setup passes every check, in order, and exits 0', async () => {
    await createPod(kube, { namespace: NAMESPACE, name: 'checkout-1', serviceAccountName: 'checkout' });
    const outcome = await doctor('checkout', ['--pod', 'checkout-1']);
    assert.equal(outcome.code, 0, outcome.stdout + outcome.stderr);
    assert.deepEqual(
      outcome.checks.map((c) => [c.check, c.status]),
      [['association', 'passed'], ['webhook', 'passed'], ['pod', 'passed'], ['token', 'passed'], ['eks-auth', 'passed'], ['agent', 'passed'], ['caller-identity', 'passed'], ['trust', 'passed']],
    );
    const byName = Object.fromEntries(outcome.checks.map((c) => [c.check, c.detail]));
    assert.match(byName['caller-identity']!, /assumed-role\/checkout-role\/eks-demo-checkout-1-/);
    assert.match(byName.trust!, new RegExp(`trust ${principalArn}`));
    assert.equal(JSON.parse(outcome.stdout).ok, true);

    // the same run as text: one line per check, then the verdict
    const text = await doctor('checkout', ['--pod', 'checkout-1'], 'text');
    assert.equal(text.code, 0);
    const lines = text.stdout.trim().split('\n');
    assert.equal(lines.length, 9, text.stdout);
    assert.ok(lines.slice(0, 8).every((l) => l.startsWith('passed ')), text.stdout);
    assert.equal(lines.at(-1), 'every check passed');
  });

  test('a pattern association: doctor names the pattern that matched, and the session follows its template', async () => {
    await createServiceAccount(kube, NAMESPACE, 'job-7');
    const url = new URL(`${server.apiUrl}/clusters/${CLUSTER}/pod-identity-associations`);
    const body = JSON.stringify({ namespace: NAMESPACE, serviceAccount: 'job-*', roleArn: trustedRole, sessionTags: { team: 'batch' }, sessionNameTemplate: 'job.{pod}-{random}' });
    const created = await fetch(url, { method: 'POST', body, headers: await signRequest({ method: 'POST', url, body, headers: { 'content-type': 'application/json' } }, { credentials: ADMIN, region: moto.region, service: 'eks' }) });
    assert.equal(created.status, 200, await created.clone().text());
    const { association } = (await created.json()) as { association: { associationId: string } };
    await createPod(kube, { namespace: NAMESPACE, name: 'job-7-1', serviceAccountName: 'job-7' });
    const outcome = await doctor('job-7', ['--pod', 'job-7-1']);
    assert.equal(outcome.code, 0, outcome.stdout + outcome.stderr);
    const byName = Object.fromEntries(outcome.checks.map((c) => [c.check, c.detail]));
    assert.equal(byName.association, `${association.associationId} (pattern default/job-*) maps default/job-7 to ${trustedRole}; session tags team=batch; session name job.{pod}-{random}`);
    assert.match(byName['caller-identity']!, /assumed-role\/checkout-role\/job\.job-7-1-[0-9a-f]{16}/);
  });

  test('a missing association fails the first check, with the command that creates it', async () => {
    const outcome = await doctor('nobody');
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.checks.map((c) => c.check), ['association']);
    const last = lastCheck(outcome);
    assert.equal(last.status, 'failed');
    assert.match(last.detail, /no association for default\/nobody in cluster demo/);
    assert.match(last.fix!, /pod-identity associations create -c demo -n default -s nobody --role-arn/);
    const text = await doctor('nobody', [], 'text');
    assert.equal(text.code, 1);
    assert.equal(text.stdout.trim().split('\n').at(-1), 'a check failed: fix it, then run doctor again');
    assert.match(text.stdout, /^FAILED {3}the association exists: no association .*\n {9}fix: create the association: pod-identity associations create/m);
  });

  test('a pod created before its association: the webhook would mutate it now, but it carries no mutation', async () => {
    const outcome = await doctor('early', ['--pod', 'early-1']);
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.checks.map((c) => [c.check, c.status]), [['association', 'passed'], ['webhook', 'passed'], ['pod', 'failed']]);
    const last = lastCheck(outcome);
    assert.match(last.detail, /pod default\/early-1 lacks the label eks\.amazonaws\.com\/pod-identity=enabled; the projected volume eks-pod-identity-token/);
    assert.match(last.fix!, /created before its association/);
  });

  test('a token of the wrong audience: a hand-made volume for sts.amazonaws.com is refused by the token check', async () => {
    // set up by hand (as another webhook might), every variable present: our webhook leaves it alone
    await createPod(kube, {
      namespace: NAMESPACE,
      name: 'legacy-1',
      serviceAccountName: 'legacy',
      labels: { 'eks.amazonaws.com/pod-identity': 'enabled' },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'registry.invalid/test:1',
            env: [
              { name: 'AWS_STS_REGIONAL_ENDPOINTS', value: 'regional' },
              { name: 'AWS_REGION', value: moto.region },
              { name: 'AWS_DEFAULT_REGION', value: moto.region },
              { name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI', value: 'http://169.254.170.23/v1/credentials' },
              { name: 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', value: `${TOKEN_DIR}/eks-pod-identity-token` },
            ],
            volumeMounts: [{ name: 'eks-pod-identity-token', mountPath: TOKEN_DIR, readOnly: true }],
          },
        ],
        volumes: [{ name: 'eks-pod-identity-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', expirationSeconds: 3600, path: 'eks-pod-identity-token' } }] } }],
      },
    });
    const outcome = await doctor('legacy', ['--pod', 'legacy-1']);
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.checks.map((c) => [c.check, c.status]), [['association', 'passed'], ['webhook', 'passed'], ['pod', 'passed'], ['token', 'failed']]);
    const last = lastCheck(outcome);
    assert.match(last.detail, new RegExp(`its audience is sts\\.amazonaws\\.com, not ${EKS_AUDIENCE.replaceAll('.', '\\.')}`));
    assert.match(last.fix!, /must request audience pods\.eks\.amazonaws\.com/);
  });

  test('a deleted pod: the pod check says it does not exist', async () => {
    await createPod(kube, { namespace: NAMESPACE, name: 'gone-1', serviceAccountName: 'gone' });
    await deletePod(kube, NAMESPACE, 'gone-1');
    const outcome = await doctor('gone', ['--pod', 'gone-1']);
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.checks.map((c) => [c.check, c.status]), [['association', 'passed'], ['webhook', 'passed'], ['pod', 'failed']]);
    assert.match(lastCheck(outcome).detail, /pod default\/gone-1 does not exist/);
  });

  test("a role that does not trust the server's principal: the trust check reads the policy with IAM GetRole", async () => {
    await createPod(kube, { namespace: NAMESPACE, name: 'stranger-1', serviceAccountName: 'stranger' });
    const outcome = await doctor('stranger', ['--pod', 'stranger-1']);
    assert.equal(outcome.code, 1);
    const last = lastCheck(outcome);
    assert.equal(last.check, 'trust');
    assert.equal(last.status, 'failed');
    assert.equal(last.detail, `${untrustedRole} does not allow sts:AssumeRole and sts:TagSession to ${principalArn}`);
    assert.equal(last.fix, `pod-identity trust-policy --role-arn ${untrustedRole} --principal-arn ${principalArn}`);
  });

  test('the agent unreachable: the agent check fails with where to look', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/v1/credentials`;
    const outcome = await doctor('checkout', ['--pod', 'checkout-1', '--agent-url', closed]);
    assert.equal(outcome.code, 1);
    assert.deepEqual(outcome.checks.map((c) => [c.check, c.status]), [['association', 'passed'], ['webhook', 'passed'], ['pod', 'passed'], ['token', 'passed'], ['eks-auth', 'passed'], ['agent', 'failed']]);
    const last = lastCheck(outcome);
    assert.equal(last.detail, `the agent at ${closed} does not answer: ECONNREFUSED`);
    assert.match(last.fix!, /is the pod-identity agent running on the pod's node/);
  });
});
