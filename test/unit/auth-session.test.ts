import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkClaims } from '../../src/auth/claims.js';
import { checkNodeBinding } from '../../src/auth/node-binding.js';
import { SESSION_TAG_KEYS } from '../../src/api/eks.js';
import { assumedRoleArn, clusterArn, customSessionTags, readsPodLabels, roleSessionName, sessionTags, templatedSessionName } from '../../src/auth/session.js';
import { KeyedBuckets } from '../../src/auth/throttle.js';
import { TokenBucket } from '../../src/lib/token-bucket.js';
import { accountOf, isCrossAccount, principalForTrust, trustPolicy } from '../../src/auth/trust-policy.js';
import { mapStsError } from '../../src/auth/issuers/sts.js';
import { WireError } from '../../src/lib/errors.js';
import { podClaims } from '../helpers/sa-tokens.js';

function throwsCode(fn: () => unknown, code: string, status = 400): void {
  assert.throws(fn, (e: unknown) => e instanceof WireError && e.code === code && e.status === status);
}

describe('role session naming and tags', () => {
  it('names sessions eks-<cluster>-<pod>-<uuid> within 64 characters of [\\w+=,.@-]', () => {
    const uuid = '0b8f3c2e-5d1a-4c8e-9f0a-1b2c3d4e5f60';
    assert.equal(roleSessionName('demo', 'web-1', uuid), `eks-demo-web-1-${uuid}`);
    const long = roleSessionName('a-very-long-cluster-name-for-testing', 'a-pod-with-a-long-generated-name-abcde', uuid);
    assert.equal(long.length, 64);
    assert.match(long, /^eks-a-very-long-cluster-name-for-testing-a-pod/);
    assert.match(roleSessionName('c_1', 'pod.with:odd/chars', uuid), /^[\w+=,.@-]+$/);
    assert.equal(roleSessionName('odd cluster', 'web-1', uuid), `eks-odd-cluster-web-1-${uuid}`);
  });

  it('builds the six transitive tags from the verified claims', () => {
    const claims = checkClaims(podClaims({ namespace: 'ns', serviceAccount: 'sa', podName: 'pod-1', podUid: 'uid-1' }), { now: Date.now() / 1000 });
    const arn = clusterArn('eu-west-1', '111122223333', 'demo');
    assert.equal(arn, 'arn:aws:eks:eu-west-1:111122223333:cluster/demo');
    assert.deepEqual(sessionTags(arn, 'demo', claims), [
      { Key: 'eks-cluster-arn', Value: arn },
      { Key: 'eks-cluster-name', Value: 'demo' },
      { Key: 'kubernetes-namespace', Value: 'ns' },
      { Key: 'kubernetes-service-account', Value: 'sa' },
      { Key: 'kubernetes-pod-name', Value: 'pod-1' },
      { Key: 'kubernetes-pod-uid', Value: 'uid-1' },
    ]);
    assert.equal(SESSION_TAG_KEYS.length, 6);
  });

  it('makes assumed-role ARNs the agent can take the account from (role paths dropped)', () => {
    assert.equal(assumedRoleArn('arn:aws:iam::111122223333:role/reader', 's1'), 'arn:aws:sts::111122223333:assumed-role/reader/s1');
    assert.equal(assumedRoleArn('arn:aws:iam::111122223333:role/team/a/reader', 's1'), 'arn:aws:sts::111122223333:assumed-role/reader/s1');
    assert.equal(assumedRoleArn('arn:aws-cn:iam::111122223333:role/r', 's'), 'arn:aws-cn:sts::111122223333:assumed-role/r/s');
  });
});

describe('node binding', () => {
  it('lets agreeing or one-sided node names through when not required', () => {
    assert.doesNotThrow(() => checkNodeBinding({ tokenNode: 'n1', requestNode: 'n1', required: false }));
    assert.doesNotThrow(() => checkNodeBinding({ tokenNode: 'n1', required: false }));
    assert.doesNotThrow(() => checkNodeBinding({ requestNode: 'n1', required: false }));
    assert.doesNotThrow(() => checkNodeBinding({ required: false }));
  });
  it('refuses a token of a pod on another node', () => {
    throwsCode(() => checkNodeBinding({ tokenNode: 'n1', requestNode: 'n2', required: false }), 'AccessDeniedException');
  });
  it('requireNodeBinding makes both names mandatory', () => {
    throwsCode(() => checkNodeBinding({ tokenNode: 'n1', required: true }), 'InvalidRequestException');
    throwsCode(() => checkNodeBinding({ requestNode: 'n1', required: true }), 'InvalidTokenException');
    assert.doesNotThrow(() => checkNodeBinding({ tokenNode: 'n1', requestNode: 'n1', required: true }));
  });
});

describe('token buckets', () => {
  it('allows the burst, then the rate', () => {
    const bucket = new TokenBucket({ rate: 2, burst: 3 }, 0);
    assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, true, false]);
    assert.equal(bucket.take(400), false);
    assert.equal(bucket.take(500), true);
    assert.equal(bucket.take(500), false);
    assert.equal(bucket.isFull(10_000), true);
  });
  it('keeps one bucket per key, bounded', () => {
    const buckets = new KeyedBuckets({ rate: 1, burst: 1 }, 2);
    assert.equal(buckets.take('a', 0), true);
    assert.equal(buckets.take('a', 0), false);
    assert.equal(buckets.take('b', 0), true);
    assert.equal(buckets.take('c', 0), true);
    assert.equal(buckets.take('a', 5_000), true);
  });
});

describe('STS error mapping', () => {
  const role = 'arn:aws:iam::111122223333:role/r';
  const sdk = (name: string, status?: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  it('maps throttling, denial, unavailability and the rest', () => {
    assert.equal(mapStsError(sdk('Throttling', 400), role).code, 'ThrottlingException');
    const denied = mapStsError(sdk('AccessDenied', 403), role);
    assert.equal(denied.code, 'AccessDeniedException');
    assert.equal(denied.status, 400);
    assert.equal(mapStsError(sdk('ServiceUnavailable', 503), role).code, 'ServiceUnavailableException');
    assert.equal(mapStsError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), role).code, 'ServiceUnavailableException');
    assert.equal(mapStsError(sdk('MalformedPolicyDocument', 400), role).code, 'InvalidRequestException');
    assert.equal(mapStsError(sdk('InvalidClientTokenId', 403), role).code, 'InternalServerException');
  });
});

describe('trust policy', () => {
  it('trusts the server principal with AssumeRole and TagSession, and ExternalId when given', () => {
    assert.equal(principalForTrust('arn:aws:sts::111122223333:assumed-role/pod-identity-server/i-0abc'), 'arn:aws:iam::111122223333:role/pod-identity-server');
    assert.equal(principalForTrust('arn:aws:iam::111122223333:user/ops'), 'arn:aws:iam::111122223333:user/ops');
    assert.equal(accountOf('arn:aws:iam::111122223333:user/ops'), '111122223333');
    assert.equal(isCrossAccount('arn:aws:iam::444455556666:role/t', 'arn:aws:iam::111122223333:role/s'), true);
    assert.equal(isCrossAccount('arn:aws:iam::111122223333:role/t', 'arn:aws:iam::111122223333:role/s'), false);
    const policy = trustPolicy({ roleArn: 'arn:aws:iam::444455556666:role/t', principalArn: 'arn:aws:iam::111122223333:role/s', externalId: 'ext-1' });
    assert.deepEqual(policy.Statement[0], {
      Sid: 'PodIdentityServerAssumeRole',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::111122223333:role/s' },
      Action: ['sts:AssumeRole', 'sts:TagSession'],
      Condition: { StringEquals: { 'sts:ExternalId': 'ext-1' } },
    });
    assert.equal(trustPolicy({ roleArn: 'arn:aws:iam::1:role/x'.replace('1', '111122223333'), principalArn: 'p' }).Statement[0]!.Condition, undefined);
    assert.throws(() => trustPolicy({ roleArn: 'nope', principalArn: 'p' }), /not an IAM role ARN/);
  });
});

describe('session name templates and custom session tags', () => {
  const parts = { cluster: 'demo', namespace: 'ci', serviceAccount: 'build-7', pod: 'build-7-x2x9k', random: '0123456789abcdef' };

  it('placeholders are filled, other characters made STS-safe, and the name cut to 64', () => {
    assert.equal(templatedSessionName('{cluster}.{namespace}.{serviceAccount}@{pod}-{random}', parts), 'demo.ci.build-7@build-7-x2x9k-0123456789abcdef');
    assert.equal(templatedSessionName('{pod}', { ...parts, pod: 'pöd:1' }), 'p-d-1');
    const long = templatedSessionName('{random}-{pod}', { ...parts, pod: 'p'.repeat(80) });
    assert.equal(long.length, 64);
    assert.ok(long.startsWith('0123456789abcdef-'));
    assert.match(long, /^[\w+=,.@-]+$/);
  });

  it('values read pod labels; a missing label refuses, naming the label', () => {
    const tags = customSessionTags({ team: '{{pod.labels.team}}', app: 'web-{{pod.labels.app.kubernetes.io/name}}', cost: 'ci' }, { team: 'payments', 'app.kubernetes.io/name': 'checkout' }, 'pod-1');
    assert.deepEqual(tags, [
      { Key: 'team', Value: 'payments' },
      { Key: 'app', Value: 'web-checkout' },
      { Key: 'cost', Value: 'ci' },
    ]);
    assert.equal(readsPodLabels({ cost: 'ci' }), false);
    assert.equal(readsPodLabels({ team: '{{pod.labels.team}}' }), true);
    assert.throws(
      () => customSessionTags({ team: '{{pod.labels.team}}' }, { app: 'x' }, 'pod-1'),
      (e: WireError) => e.code === 'InvalidRequestException' && e.reason === 'pod_label_missing' && e.message === 'Session tag team needs label team, which pod pod-1 does not have.',
    );
    // a label set to "" is there: its tag is empty on purpose
    assert.deepEqual(customSessionTags({ team: '{{pod.labels.team}}' }, { team: '' }, 'pod-1'), [{ Key: 'team', Value: '' }]);
  });
});
