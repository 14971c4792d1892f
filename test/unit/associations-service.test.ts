import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createInput, validate } from '../../src/api/eks.js';
import { AssociationService, associationArn, decodePageToken, encodePageToken, newAssociationId } from '../../src/associations/service.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import { WireError } from '../../src/lib/errors.js';
import type { ChangeContext } from '../../src/associations/audit.js';

test('ids and ARNs have the EKS formats', () => {
  for (let i = 0; i < 200; i++) assert.match(newAssociationId(), /^a-[a-z0-9]{17}$/);
  assert.equal(associationArn('eu-west-1', '123456789012', 'prod', 'a-abc'), 'arn:aws:eks:eu-west-1:123456789012:podidentityassociation/prod/a-abc');
});

test('page tokens are opaque, and bound to their filters', () => {
  const token = encodePageToken({ a: 'a-aaaaaaaaaaaaaaaaa', n: 'ns' });
  assert.equal(decodePageToken(token, { namespace: 'ns' }).a, 'a-aaaaaaaaaaaaaaaaa');
  assert.throws(() => decodePageToken(token, {}), (e: WireError) => e.code === 'InvalidParameterException');
  assert.throws(() => decodePageToken('garbage', {}), (e: WireError) => e.code === 'InvalidParameterException');
  assert.throws(() => decodePageToken(encodePageToken({ a: "x' OR 1=1" }), {}), (e: WireError) => e.code === 'InvalidParameterException');
});

test('validation names the field and follows the EKS rules', () => {
  const base = { namespace: 'default', serviceAccount: 'my.sa-1', roleArn: 'arn:aws:iam::123456789012:role/path/to/Role_1' };
  assert.deepEqual(validate(createInput, base), base);
  assert.equal(validate(createInput, { ...base, roleArn: 'arn:aws-cn:iam::123456789012:role/r' }).roleArn, 'arn:aws-cn:iam::123456789012:role/r');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, namespace: undefined }, /^namespace is required/],
    [{ ...base, namespace: 'UPPER' }, /^namespace must be a DNS-1123 label/],
    [{ ...base, namespace: 'a'.repeat(64) }, /^namespace must be at most 63/],
    [{ ...base, serviceAccount: '-x' }, /^serviceAccount must be a DNS-1123 subdomain/],
    [{ ...base, roleArn: 'arn:aws:iam::123:role/r' }, /^roleArn must be an IAM role ARN/],
    [{ ...base, roleArn: 'arn:aws:iam::123456789012:user/u' }, /^roleArn/],
    [{ ...base, targetRoleArn: 'nope' }, /^targetRoleArn/],
    [{ ...base, tags: {} }, /^tags must have between 1 and 50/],
    [{ ...base, tags: { ['k'.repeat(129)]: 'v' } }, /^tags tag key/],
    [{ ...base, tags: { k: 'v'.repeat(257) } }, /^tags tag value/],
    [{ ...base, policy: '[1]' }, /^policy must be a JSON policy document/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => validate(createInput, input), (e: WireError) => e.code === 'InvalidParameterException' && message.test(e.message), JSON.stringify(input).slice(0, 80));
  }
});

describe('what the CRD reconciler uses, on a real (in-memory SQLite) store', () => {
  const ROLE = 'arn:aws:iam::111122223333:role/app';
  const OWNER = 'arn:aws:eks:us-east-1:000000000000:podidentityassociationresource/demo/shop/app/uid-1';
  const BY_RESOURCE: ChangeContext = { actor: { kind: 'kubernetes', apiVersion: 'podidentity.dev/v1alpha1', resource: 'podidentityassociations', namespace: 'shop', name: 'app', uid: 'uid-1' } };
  const service = () => new AssociationService({ store: new SqliteAssociationStore(':memory:'), region: 'us-east-1', accountId: '000000000000', clusters: () => ['demo'] });

  test('create records an owner; find and findBySubject answer undefined rather than throw', async () => {
    const associations = service();
    assert.equal(await associations.find('demo', 'a-aaaaaaaaaaaaaaaaa'), undefined);
    assert.equal(await associations.findBySubject({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'app' }), undefined);
    const made = await associations.create('demo', { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE }, BY_RESOURCE, { ownerArn: OWNER });
    assert.equal(made.ownerArn, OWNER);
    assert.deepEqual(await associations.find('demo', made.associationId), made);
    assert.deepEqual(await associations.findBySubject({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'app' }), made);
    const byApi = await associations.create('demo', { namespace: 'shop', serviceAccount: 'other', roleArn: ROLE }, { actor: { kind: 'access-key', accessKeyId: 'AKIAADMIN' } });
    assert.equal(byApi.ownerArn, undefined, 'the EKS API records no owner');
    await assert.rejects(associations.find('nope', made.associationId), (e: WireError) => e.code === 'ResourceNotFoundException', 'an unknown cluster, as the API says');
  });

  test('update replaces the whole tag set, and keeps the API’s rules (policy needs disableSessionTags)', async () => {
    const associations = service();
    const made = await associations.create('demo', { namespace: 'shop', serviceAccount: 'app', roleArn: ROLE, tags: { a: '1' } }, BY_RESOURCE, { ownerArn: OWNER });
    assert.deepEqual((await associations.update('demo', made.associationId, { tags: { b: '2' } }, BY_RESOURCE)).tags, { b: '2' });
    assert.deepEqual((await associations.update('demo', made.associationId, { tags: {} }, BY_RESOURCE)).tags, {});
    await assert.rejects(associations.update('demo', made.associationId, { policy: '{}' }, BY_RESOURCE), (e: WireError) => e.code === 'InvalidParameterException');
    const target = await associations.update('demo', made.associationId, { targetRoleArn: 'arn:aws:iam::444455556666:role/t' }, BY_RESOURCE);
    assert.match(target.externalId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal((await associations.update('demo', made.associationId, { targetRoleArn: '' }, BY_RESOURCE)).externalId, undefined);
  });
});
