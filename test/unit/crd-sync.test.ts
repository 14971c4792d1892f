// The pure decisions of the PodIdentityAssociation reconciler: spec checks,
// the update that brings an association in line, and the status it reports.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  changesFor,
  conflictMessage,
  createInputFor,
  desiredFromSpec,
  leaseNameFor,
  nextStatus,
  ownerArnOf,
  ownerArnPrefix,
  type PodIdentityAssociationResource,
} from '../../src/kube/crd/resource.js';
import type { Association } from '../../src/api/eks.js';

const ROLE = 'arn:aws:iam::111122223333:role/app';
const TARGET = 'arn:aws:iam::444455556666:role/target';

function resource(spec: Record<string, unknown>, status?: PodIdentityAssociationResource['status']): PodIdentityAssociationResource {
  return { metadata: { name: 'app', namespace: 'shop', uid: '6f1c-uid', generation: 3 }, spec, ...(status && { status }) };
}

const current: Association = {
  clusterName: 'demo',
  namespace: 'shop',
  serviceAccount: 'app',
  roleArn: ROLE,
  associationId: 'a-abcdefghijklmnopq',
  associationArn: 'arn:aws:eks:us-east-1:000000000000:podidentityassociation/demo/a-abcdefghijklmnopq',
  tags: {},
  createdAt: 1,
  modifiedAt: 1,
  disableSessionTags: false,
};

describe('desiredFromSpec', () => {
  test('a valid spec, with the namespace taken from the resource', () => {
    assert.deepEqual(desiredFromSpec(resource({ serviceAccount: 'app', roleArn: ROLE, tags: { team: 'a' } })), {
      ok: true,
      desired: { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false, tags: { team: 'a' } },
    });
    assert.deepEqual(desiredFromSpec(resource({ serviceAccount: 'app', roleArn: ROLE, tags: {}, targetRoleArn: '', policy: '' })), {
      ok: true,
      desired: { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false, tags: {} },
    });
    const full = desiredFromSpec(resource({ serviceAccount: 'app', roleArn: ROLE, targetRoleArn: TARGET, disableSessionTags: true, policy: '{"Version":"2012-10-17"}' }));
    assert.ok(full.ok);
    assert.equal(full.desired.targetRoleArn, TARGET);
    assert.equal(full.desired.policy, '{"Version":"2012-10-17"}');
  });

  test('the rules of CreatePodIdentityAssociation become messages naming the spec field', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ roleArn: ROLE }, /^spec\.serviceAccount is required/],
      [{ serviceAccount: 'app', roleArn: 'arn:aws:iam::1:role/x' }, /^spec\.roleArn must be an IAM role ARN/],
      [{ serviceAccount: 'App', roleArn: ROLE }, /^spec\.serviceAccount must be a DNS-1123 subdomain/],
      [{ serviceAccount: 'app', roleArn: ROLE, tags: { 'aws:x': 'y' } }, /^spec\.tags tag keys must not start with "aws:"/],
      [{ serviceAccount: 'app', roleArn: ROLE, policy: 'not json', disableSessionTags: true }, /^spec\.policy must be a JSON policy document/],
      [{ serviceAccount: 'app', roleArn: ROLE, policy: '{}' }, /^spec\.policy can only be set when spec\.disableSessionTags is true/],
    ];
    for (const [spec, message] of cases) {
      const result = desiredFromSpec(resource(spec));
      assert.equal(result.ok, false, JSON.stringify(spec));
      if (!result.ok) assert.match(result.message, message);
    }
  });
});

describe('changesFor', () => {
  const desired = { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false, tags: {} };

  test('nothing to do when the association matches', () => {
    assert.equal(changesFor(current, desired), undefined);
  });

  test('role, flags, policy and target role become an UpdatePodIdentityAssociation (the service makes the externalId)', () => {
    assert.deepEqual(changesFor(current, { ...desired, roleArn: 'arn:aws:iam::111122223333:role/b', disableSessionTags: true, policy: '{}', targetRoleArn: TARGET }), {
      roleArn: 'arn:aws:iam::111122223333:role/b',
      disableSessionTags: true,
      policy: '{}',
      targetRoleArn: TARGET,
    });
  });

  test('changed tags replace the old ones', () => {
    assert.deepEqual(changesFor(current, { ...desired, tags: { team: 'a' } }), { tags: { team: 'a' } });
    assert.deepEqual(changesFor({ ...current, tags: { team: 'a' } }, desired), { tags: {} });
  });

  test('a removed target role and policy are "" (what UpdatePodIdentityAssociation takes for removal)', () => {
    assert.deepEqual(changesFor({ ...current, targetRoleArn: TARGET, externalId: 'x', policy: '{}', disableSessionTags: true }, { ...desired, disableSessionTags: true }), {
      policy: '',
      targetRoleArn: '',
    });
  });

  test('the same target role is no change (its externalId stays)', () => {
    assert.equal(changesFor({ ...current, targetRoleArn: TARGET, externalId: 'x' }, { ...desired, targetRoleArn: TARGET }), undefined);
  });
});

test('createInputFor asks CreatePodIdentityAssociation for the spec, without empty tags', () => {
  const desired = { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false, tags: {} };
  assert.deepEqual(createInputFor(desired), { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false });
  assert.deepEqual(createInputFor({ ...desired, tags: { a: 'b' }, targetRoleArn: TARGET, disableSessionTags: true, policy: '{}' }), {
    namespace: 'shop',
    serviceAccount: 'app',
    roleArn: ROLE,
    disableSessionTags: true,
    tags: { a: 'b' },
    targetRoleArn: TARGET,
    policy: '{}',
  });
});

test('conflictMessage names the association and who made it', () => {
  const prefix = ownerArnPrefix('us-east-1', '000000000000', 'demo');
  const desired = { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false, tags: {} };
  assert.equal(conflictMessage(desired, current, prefix), 'service account shop/app already has association a-abcdefghijklmnopq, made by the EKS API');
  assert.match(conflictMessage(desired, { ...current, ownerArn: `${prefix}shop/other/uid-1` }, prefix), /made by the PodIdentityAssociation shop\/other$/);
  assert.match(conflictMessage(desired, { ...current, ownerArn: 'arn:aws:iam::1:role/x' }, prefix), /made by arn:aws:iam::1:role\/x$/);
});

test('leaseNameFor: one valid Lease name per cluster', () => {
  assert.equal(leaseNameFor('demo'), 'pod-identity-crd-demo');
  const names = ['Prod_1', 'prod-1', 'prod-1-', 'PROD', '_'].map(leaseNameFor);
  assert.equal(new Set(names).size, names.length, names.join(' '));
  for (const name of [...names, leaseNameFor('a'.repeat(100))]) assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, name);
  assert.match(leaseNameFor('Prod_1'), /^pod-identity-crd-prod-1-[0-9a-f]{8}$/);
});

describe('nextStatus', () => {
  const t0 = Date.parse('2030-01-02T03:04:05.678Z');

  test('a Ready condition with observedGeneration, RFC 3339 seconds, and the association', () => {
    assert.deepEqual(nextStatus(undefined, 3, { ready: true, reason: 'Synced', message: 'ok', association: current }, t0), {
      associationId: current.associationId,
      associationArn: current.associationArn,
      observedGeneration: 3,
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Synced', message: 'ok', lastTransitionTime: '2030-01-02T03:04:05Z', observedGeneration: 3 },
        {
          type: 'TagsOwnedByResource',
          status: 'True',
          reason: 'SpecTags',
          message: `spec.tags are the tags of ${current.associationArn}: TagResource and UntagResource on it are undone; change spec.tags instead`,
          lastTransitionTime: '2030-01-02T03:04:05Z',
          observedGeneration: 3,
        },
      ],
    });
    // not synced: nobody's tags are owned
    assert.deepEqual(nextStatus(undefined, 3, { ready: false, reason: 'Conflict', message: 'taken' }, t0).conditions!.map((c) => c.type), ['Ready']);
  });

  test('lastTransitionTime moves only when the status flips; other conditions are kept', () => {
    const other = { type: 'Other', status: 'True' as const, reason: 'X', message: '', lastTransitionTime: '2029-01-01T00:00:00Z' };
    const first = nextStatus({ conditions: [other] }, 1, { ready: false, reason: 'Conflict', message: 'taken' }, t0);
    const same = nextStatus(first, 2, { ready: false, reason: 'InvalidSpec', message: 'bad' }, t0 + 60_000);
    assert.equal(same.conditions![1]!.lastTransitionTime, '2030-01-02T03:04:05Z');
    assert.equal(same.conditions![1]!.reason, 'InvalidSpec');
    assert.deepEqual(same.conditions![0], other);
    assert.equal(same.associationId, null, 'no association: the field is cleared (merge patch null)');
    const flipped = nextStatus(same, 3, { ready: true, reason: 'Synced', message: 'ok', association: current }, t0 + 120_000);
    assert.equal(flipped.conditions![1]!.lastTransitionTime, '2030-01-02T03:06:05Z');
  });
});

test('ownerArnOf names the cluster, namespace, name and uid of the resource', () => {
  assert.equal(
    ownerArnOf('eu-west-1', '123456789012', 'demo', resource({})),
    'arn:aws:eks:eu-west-1:123456789012:podidentityassociationresource/demo/shop/app/6f1c-uid',
  );
});

test('a spec may name a service account pattern and carry session tags, a session name template and non-transitive tags', () => {
  const result = desiredFromSpec(resource({ serviceAccount: 'build-*', roleArn: ROLE, sessionTags: { team: '{{pod.labels.team}}' }, sessionNameTemplate: 'ci-{pod}', transitiveSessionTags: false }));
  assert.deepEqual(result, {
    ok: true,
    desired: { namespace: 'shop', serviceAccount: 'build-*', roleArn: ROLE, disableSessionTags: false, tags: {}, sessionTags: { team: '{{pod.labels.team}}' }, sessionNameTemplate: 'ci-{pod}', transitiveSessionTags: false },
  });
  assert.ok(result.ok);
  assert.deepEqual(createInputFor(result.desired), { namespace: 'shop', serviceAccount: 'build-*', roleArn: ROLE, disableSessionTags: false, sessionTags: { team: '{{pod.labels.team}}' }, sessionNameTemplate: 'ci-{pod}', transitiveSessionTags: false });
  assert.deepEqual(changesFor(current, result.desired), { sessionTags: { team: '{{pod.labels.team}}' }, sessionNameTemplate: 'ci-{pod}', transitiveSessionTags: false });
  assert.deepEqual(changesFor({ ...current, sessionTags: { team: 'x' }, sessionNameTemplate: 'ci-{pod}', transitiveSessionTags: false }, { ...result.desired, sessionTags: undefined, sessionNameTemplate: undefined, transitiveSessionTags: undefined }), {
    sessionTags: {},
    sessionNameTemplate: '',
    transitiveSessionTags: true,
  });
  const refused = desiredFromSpec(resource({ serviceAccount: 'app', roleArn: ROLE, disableSessionTags: true, sessionTags: { team: 'x' } }));
  assert.deepEqual(refused, { ok: false, message: 'spec.sessionTags can only be set when spec.disableSessionTags is false' });
  const reserved = desiredFromSpec(resource({ serviceAccount: 'app', roleArn: ROLE, sessionTags: { 'kubernetes-pod-name': 'x' } }));
  assert.ok(!reserved.ok && /^spec\.sessionTags key "kubernetes-pod-name" is one of the six EKS session tags/.test(reserved.message));
});
