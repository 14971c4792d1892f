// `pod-identity dev --kubeconfig` against a real kube-apiserver, its
// credentials from an exec plugin: `dev token --pod` asks the cluster for a
// token bound to the pod (TokenRequest), dev's server verifies it by
// TokenReview, and dev's agent hands out the role's credentials for it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { eventually } from '../helpers/eventually.js';
import { CLI, freePort, spawnTestProcess, waitForHttp, type TestProcess } from '../helpers/server-process.js';
import { createPod, createServiceAccount } from '../peers/kube-api.js';
import { EKS_AUDIENCE, kubeMissingReason, startKubeControlPlane, writeExecKubeconfig, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';

const run = promisify(execFile);

describe('dev against a real cluster: dev token --pod', { skip: requirePeer('kube-apiserver', kubeMissingReason), timeout: 120_000 }, () => {
  let kube: KubeControlPlane;
  let dev: TestProcess;
  let stateDir: string;
  let apiUrl: string;
  let credentialsUrl: string;

  before(async () => {
    kube = await startKubeControlPlane();
    await createServiceAccount(kube, 'default', 'demo');
    const exec = writeExecKubeconfig(kube, 'dev');
    stateDir = join(kube.dir, 'dev-state');
    const [api, webhook, metrics, agent] = [await freePort(), await freePort(), await freePort(), await freePort()];
    apiUrl = `http://127.0.0.1:${api}`;
    credentialsUrl = `http://127.0.0.1:${agent}/v1/credentials`;
    // prettier-ignore
    dev = spawnTestProcess(process.execPath, [
      CLI, 'dev', '--state-dir', stateDir, '--kubeconfig', exec.path,
      '--listen', `127.0.0.1:${api}`, '--webhook-listen', `127.0.0.1:${webhook}`, '--metrics-listen', `127.0.0.1:${metrics}`, '--agent-port', String(agent),
    ]);
    await dev.untilReady(waitForHttp(`http://127.0.0.1:${metrics}/readyz`, 30_000), 'dev');
    // the server is ready before the agent (which warms up first) and the state file it is written after
    await dev.untilReady(eventually('dev wrote its state', () => existsSync(join(stateDir, 'dev-state.json')), { timeoutMs: 15_000, context: () => dev.logs() }).then(() => undefined), 'dev');
  });
  after(async () => {
    await dev?.stop();
    await kube?.stop();
  });

  test('the token is bound to the pod, and the agent trades it for the role', async () => {
    const pod = await createPod(kube, { namespace: 'default', name: 'demo-pod', serviceAccountName: 'demo' });
    const { keys } = JSON.parse(readFileSync(join(stateDir, 'dev-state.json'), 'utf8')) as { keys: { admin: { accessKeyId: string; secretAccessKey: string } } };
    // prettier-ignore
    await run(process.execPath, [
      CLI, 'associations', 'create', '--endpoint', apiUrl, '--cluster-name', 'dev', '--namespace', 'default', '--service-account', 'demo',
      '--role-arn', 'arn:aws:iam::111122223333:role/demo', '--access-key-id', keys.admin.accessKeyId, '--secret-access-key', keys.admin.secretAccessKey,
    ], { timeout: 20_000 });

    const { stdout } = await run(process.execPath, [CLI, 'dev', 'token', '--state-dir', stateDir, '--namespace', 'default', '--service-account', 'demo', '--pod', 'demo-pod'], { timeout: 20_000 });
    const token = readFileSync(stdout.trim(), 'utf8');
    const claims = decodeJwt(token);
    assert.deepEqual(claims.aud, [EKS_AUDIENCE]);
    assert.equal(claims.sub, 'system:serviceaccount:default:demo');
    assert.deepEqual((claims['kubernetes.io'] as { pod: { name: string; uid: string } }).pod, { name: 'demo-pod', uid: pod.metadata!.uid });

    const res = await fetch(credentialsUrl, { headers: { authorization: token }, signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as Record<string, string>;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.AccessKeyId ?? '', /^ASIA/);
    assert.equal(body.AccountId, '111122223333');
  });

  test('a pod that does not exist is named in the error', async () => {
    const failed = await run(process.execPath, [CLI, 'dev', 'token', '--state-dir', stateDir, '--namespace', 'default', '--service-account', 'demo', '--pod', 'no-such-pod'], { timeout: 20_000 }).then(
      () => assert.fail('dev token should have failed'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /pod default\/no-such-pod: the API server answered HTTP 404: pods "no-such-pod" not found/);
  });
});
