// The audit trail of a running server (`audit.file`): one record per
// association change made with @aws-sdk/client-eks (create, update,
// TagResource, UntagResource, delete), with the signing key as actor and the
// association before and after; one record per EKS Auth decision with the
// token's jti, the session name and the issued AccessKeyId, or the reason it
// was refused. Neither the records nor the log hold a token, a secret key or
// a session token.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  EKSClient,
  TagResourceCommand,
  UntagResourceCommand,
  UpdatePodIdentityAssociationCommand,
} from '@aws-sdk/client-eks';
import { decodeJwt } from 'jose';
import { signRequest } from '../../src/lib/sigv4.js';
import { ADMIN, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { jwksOf, podClaims, tamperPayload, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';

const ROLE = 'arn:aws:iam::111122223333:role/audited';
const NEW_ROLE = 'arn:aws:iam::111122223333:role/audited-v2';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

describe('audit trail', { timeout: 120_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let signer: TestSigner;
  let eks: EKSClient;
  let records: Loose[] = [];
  let logs = '';
  /** everything secret that went over the wire: none of it may be written down */
  const secrets: string[] = [ADMIN.secretAccessKey, NODE.secretAccessKey];
  let associationArn = '';
  let associationId = '';
  const tokens: Record<'allowed' | 'unassociated' | 'forged', string> = { allowed: '', unassociated: '', forged: '' };
  let issuedAccessKeyId = '';

  const assumeRole = async (token: string) => {
    const url = new URL('/clusters/demo/assume-role-for-pod-identity', server.apiUrl);
    const body = JSON.stringify({ token });
    const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' });
    const res = await fetch(url, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as Loose };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-it-'));
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({
      config: {
        clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
        issuer: { type: 'local', durationSeconds: 3600 },
        audit: { file: join(dir, 'audit.jsonl') },
      },
    });
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });

    // association changes, each through the API an operator (or Terraform) uses
    const { association } = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'cart', roleArn: ROLE }));
    associationArn = association!.associationArn!;
    associationId = association!.associationId!;
    await eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId, roleArn: NEW_ROLE }));
    await eks.send(new TagResourceCommand({ resourceArn: associationArn, tags: { team: 'payments', tier: 'gold' } }));
    await eks.send(new UntagResourceCommand({ resourceArn: associationArn, tagKeys: ['tier'] }));

    // EKS Auth: one allowed, one refused after verification, one refused by it
    tokens.allowed = await signer.sign(podClaims({ namespace: 'shop', serviceAccount: 'cart', podName: 'cart-1' }));
    tokens.unassociated = await signer.sign(podClaims({ namespace: 'shop', serviceAccount: 'nobody', podName: 'nobody-1' }));
    tokens.forged = tamperPayload(tokens.allowed, { ...decodeJwt(tokens.allowed), sub: 'system:serviceaccount:shop:admin' });
    const allowed = await assumeRole(tokens.allowed);
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    issuedAccessKeyId = allowed.body.credentials.accessKeyId;
    secrets.push(allowed.body.credentials.secretAccessKey, allowed.body.credentials.sessionToken, ...Object.values(tokens));
    assert.equal((await assumeRole(tokens.unassociated)).status, 404);
    assert.equal((await assumeRole(tokens.forged)).status, 400);

    await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: 'demo', associationId }));
    // stopping flushes the file and the log
    await server.stop().then(() => undefined);
    logs = server.logs();
    records = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Loose);
  });

  after(async () => {
    eks?.destroy();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const changes = () => records.filter((r) => r.type === 'association-change');
  const decisions = () => records.filter((r) => r.type === 'eks-auth-decision');

  test('each change through the API and the tag operations is one record: the access key, the operation, before and after', () => {
    assert.deepEqual(
      changes().map((r) => r.operation),
      ['CreatePodIdentityAssociation', 'UpdatePodIdentityAssociation', 'TagResource', 'UntagResource', 'DeletePodIdentityAssociation'],
    );
    for (const record of changes()) {
      assert.deepEqual(record.actor, { kind: 'access-key', accessKeyId: ADMIN.accessKeyId });
      assert.equal(record.cluster, 'demo');
      assert.equal(record.associationId, associationId);
      assert.equal(record.associationArn, associationArn);
      assert.match(record.requestId, /^[0-9a-f-]{36}$/);
      assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    const [create, update, tag, untag, remove] = changes();
    assert.equal(create.before, null);
    assert.equal(create.after.roleArn, ROLE);
    assert.equal(create.after.namespace, 'shop');
    assert.equal(update.before.roleArn, ROLE);
    assert.equal(update.after.roleArn, NEW_ROLE);
    assert.deepEqual(tag.before.tags, {});
    assert.deepEqual(tag.after.tags, { team: 'payments', tier: 'gold' });
    assert.deepEqual(untag.before.tags, { team: 'payments', tier: 'gold' });
    assert.deepEqual(untag.after.tags, { team: 'payments' });
    assert.equal(remove.before.roleArn, NEW_ROLE);
    assert.equal(remove.after, null);
    // the log carries the same records
    assert.equal(logs.split('\n').filter((l) => l.includes('"association changed"')).length, 5);
  });

  test('an allowed EKS Auth decision names the token\'s jti, the session name and the issued AccessKeyId', () => {
    const [allowed] = decisions();
    assert.equal(allowed.outcome, 'allowed');
    assert.equal(allowed.jti, decodeJwt(tokens.allowed).jti);
    assert.equal(allowed.tokenVerified, true);
    assert.match(allowed.sessionName, /^eks-demo-cart-1-[0-9a-f-]+$/);
    assert.equal(allowed.accessKeyId, issuedAccessKeyId);
    assert.equal(allowed.caller, NODE.accessKeyId);
    assert.equal(allowed.roleArn, NEW_ROLE);
    assert.equal(allowed.reason, undefined);
  });

  test('refused decisions carry the jti and a reason code', () => {
    const [, unassociated, forged] = decisions();
    assert.equal(unassociated.outcome, 'denied');
    assert.equal(unassociated.errorType, 'ResourceNotFoundException');
    assert.equal(unassociated.reason, 'no_association');
    assert.equal(unassociated.jti, decodeJwt(tokens.unassociated).jti);
    assert.equal(unassociated.tokenVerified, true);
    assert.equal(unassociated.accessKeyId, undefined);

    assert.equal(forged.outcome, 'denied');
    assert.equal(forged.errorType, 'InvalidTokenException');
    assert.equal(forged.reason, 'bad_signature');
    // what the forged token claims, marked as unverified
    assert.equal(forged.jti, decodeJwt(tokens.allowed).jti);
    assert.equal(forged.tokenVerified, false);
    assert.equal(forged.namespace, undefined);
  });

  test('no token, secret key or session token is in the records or the log', () => {
    const file = readFileSync(join(dir, 'audit.jsonl'), 'utf8');
    assert.equal(secrets.length, 7);
    for (const secret of secrets) {
      assert.ok(secret.length >= 16, 'a real secret');
      assert.ok(!file.includes(secret), `the audit file holds a secret (${secret.slice(0, 6)}…)`);
      assert.ok(!logs.includes(secret), `the log holds a secret (${secret.slice(0, 6)}…)`);
      // nor the token's signature alone
      const tail = secret.split('.').pop()!;
      assert.ok(!file.includes(tail) && !logs.includes(tail));
    }
  });
});
