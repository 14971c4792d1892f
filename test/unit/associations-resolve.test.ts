import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createInput, updateInput, validate } from '../../src/api/eks.js';
import { hasPattern, mostSpecific } from '../../src/associations/resolve.js';
import { AssociationService } from '../../src/associations/service.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import type { ChangeContext } from '../../src/associations/audit.js';
import type { WireError } from '../../src/lib/errors.js';
import { RESOLUTION_CASES } from '../fixtures/associations/resolution.js';

const ROLE = 'arn:aws:iam::111122223333:role/app';
const BY_KEY: ChangeContext = { actor: { kind: 'access-key', accessKeyId: 'AKIAADMIN' } };

describe('wildcard resolution order (the shared table)', () => {
  for (const c of RESOLUTION_CASES) {
    test(c.name, () => {
      const chosen = mostSpecific(c.associations, c.pod.namespace, c.pod.serviceAccount);
      assert.equal(chosen, c.chosen === null ? undefined : c.associations[c.chosen]);
      // the order the candidates come in never matters
      assert.equal(mostSpecific([...c.associations].reverse(), c.pod.namespace, c.pod.serviceAccount), chosen);
    });
  }
});

test('patterns: "*" or a prefix ending in "*", in namespace and service account alike', () => {
  const base = { namespace: 'ci', serviceAccount: 'build', roleArn: ROLE };
  for (const [namespace, serviceAccount] of [['*', '*'], ['team-*', 'build-*'], ['ci', 'build.v1-*'], ['t*', 'b*']]) {
    assert.deepEqual(validate(createInput, { ...base, namespace, serviceAccount }), { ...base, namespace, serviceAccount });
    assert.ok(hasPattern({ namespace: namespace!, serviceAccount: serviceAccount! }));
  }
  for (const [field, value] of [['namespace', '*ci'], ['namespace', 'c*i'], ['namespace', '-*'], ['namespace', 'a.b*'], ['serviceAccount', 'build**'], ['serviceAccount', 'Build-*'], ['serviceAccount', '.*']]) {
    assert.throws(
      () => validate(createInput, { ...base, [field!]: value }),
      (e: WireError) => e.code === 'InvalidParameterException' && e.message.startsWith(`${field} must be`) && e.message.includes('prefix ending in "*"'),
      `${field}=${value}`,
    );
  }
  assert.equal(hasPattern(base), false);
});

test('session tags follow EKS tag rules, keep clear of the six EKS keys, and fit STS\'s 50 with them', () => {
  const base = { namespace: 'ci', serviceAccount: 'build', roleArn: ROLE };
  assert.deepEqual(validate(createInput, { ...base, sessionTags: { team: '{{pod.labels.team}}', cost: 'ci-{{pod.labels.app.kubernetes.io/name}}' } }).sessionTags, {
    team: '{{pod.labels.team}}',
    cost: 'ci-{{pod.labels.app.kubernetes.io/name}}',
  });
  const fortyFour = Object.fromEntries(Array.from({ length: 44 }, (_, i) => [`k${i}`, 'v']));
  assert.equal(Object.keys(validate(createInput, { ...base, sessionTags: fortyFour }).sessionTags!).length, 44);
  const cases: [Record<string, string>, RegExp][] = [
    [{ ...fortyFour, k44: 'v' }, /at most 44 tags.*six EKS tags count/],
    [{ 'kubernetes-namespace': 'x' }, /one of the six EKS session tags/],
    [{ 'EKS-Cluster-Name': 'x' }, /one of the six EKS session tags/],
    [{ Team: 'a', team: 'b' }, /differs from another only in case/],
    [{ 'aws:x': 'v' }, /must not start with "aws:"/],
    [{ k: 'a{b}' }, /tag value of "k" may hold only/],
    [{ k: '{{pod.annotations.x}}' }, /tag value of "k" may hold only/],
    [{ k: 'v'.repeat(257) }, /at most 256/],
  ];
  for (const [sessionTags, message] of cases) {
    assert.throws(() => validate(createInput, { ...base, sessionTags }), (e: WireError) => e.code === 'InvalidParameterException' && e.message.startsWith('sessionTags ') && message.test(e.message), JSON.stringify(sessionTags).slice(0, 60));
  }
});

test('session name templates know five placeholders and STS\'s characters', () => {
  const base = { namespace: 'ci', serviceAccount: 'build', roleArn: ROLE };
  assert.equal(validate(createInput, { ...base, sessionNameTemplate: '{cluster}.{namespace}.{serviceAccount}@{pod}-{random}' }).sessionNameTemplate, '{cluster}.{namespace}.{serviceAccount}@{pod}-{random}');
  assert.throws(() => validate(createInput, { ...base, sessionNameTemplate: 'ci-{node}' }), /sessionNameTemplate has an unknown placeholder \{node\}/);
  assert.throws(() => validate(createInput, { ...base, sessionNameTemplate: 'ci {pod}' }), /sessionNameTemplate may hold, outside its placeholders, only/);
  assert.throws(() => validate(createInput, { ...base, sessionNameTemplate: 'x' }), /sessionNameTemplate must be 2-128/);
  assert.equal(validate(updateInput, { sessionNameTemplate: '' }).sessionNameTemplate, '', '"" restores the default');
});

describe('the association service with patterns and the extension fields, on a real (in-memory SQLite) store', () => {
  const service = (allowPatterns?: boolean) =>
    new AssociationService({ store: new SqliteAssociationStore(':memory:'), region: 'us-east-1', accountId: '000000000000', clusters: () => ['demo'], ...(allowPatterns !== undefined && { allowPatterns }) });

  test('the same pattern twice is ResourceInUseException; another pattern is not', async () => {
    const associations = service();
    await associations.create('demo', { namespace: 'ci', serviceAccount: 'build-*', roleArn: ROLE }, BY_KEY);
    await associations.create('demo', { namespace: 'ci', serviceAccount: 'build-1*', roleArn: ROLE }, BY_KEY);
    await assert.rejects(associations.create('demo', { namespace: 'ci', serviceAccount: 'build-*', roleArn: ROLE }, BY_KEY), (e: WireError) => e.code === 'ResourceInUseException');
  });

  test('allowPatterns false refuses a pattern with InvalidParameterException, and still takes names', async () => {
    const associations = service(false);
    for (const [namespace, serviceAccount] of [['ci', '*'], ['team-*', 'app']]) {
      await assert.rejects(associations.create('demo', { namespace: namespace!, serviceAccount: serviceAccount!, roleArn: ROLE }, BY_KEY), (e: WireError) => e.code === 'InvalidParameterException' && /allowPatterns is false/.test(e.message));
    }
    await associations.create('demo', { namespace: 'ci', serviceAccount: 'app', roleArn: ROLE }, BY_KEY);
  });

  test('a list for one service account by name answers the association that applies; other filters match literally', async () => {
    const associations = service();
    const wide = await associations.create('demo', { namespace: 'ci', serviceAccount: '*', roleArn: ROLE }, BY_KEY);
    const builds = await associations.create('demo', { namespace: 'ci', serviceAccount: 'build-*', roleArn: ROLE }, BY_KEY);
    assert.deepEqual((await associations.list('demo', { namespace: 'ci', serviceAccount: 'build-7', maxResults: 100 })).associations, [builds]);
    assert.deepEqual((await associations.list('demo', { namespace: 'ci', serviceAccount: 'deploy', maxResults: 100 })).associations, [wide]);
    assert.deepEqual((await associations.list('demo', { namespace: 'ci', serviceAccount: 'build-*', maxResults: 100 })).associations, [builds]);
    assert.equal((await associations.list('demo', { namespace: 'ci', maxResults: 100 })).associations.length, 2);
    assert.deepEqual((await associations.list('demo', { namespace: 'web', serviceAccount: 'x', maxResults: 100 })).associations, []);
  });

  test('sessionTags need the EKS tags on; update sets and clears the extension fields', async () => {
    const associations = service();
    await assert.rejects(
      associations.create('demo', { namespace: 'ci', serviceAccount: 'a', roleArn: ROLE, disableSessionTags: true, sessionTags: { team: 'x' } }, BY_KEY),
      (e: WireError) => e.code === 'InvalidParameterException' && /sessionTags can only be set when disableSessionTags is false/.test(e.message),
    );
    const made = await associations.create('demo', { namespace: 'ci', serviceAccount: 'a', roleArn: ROLE, sessionTags: { team: 'x' }, sessionNameTemplate: 'ci-{pod}', transitiveSessionTags: false }, BY_KEY);
    assert.deepEqual([made.sessionTags, made.sessionNameTemplate, made.transitiveSessionTags], [{ team: 'x' }, 'ci-{pod}', false]);
    await assert.rejects(associations.update('demo', made.associationId, { disableSessionTags: true }, BY_KEY), (e: WireError) => e.code === 'InvalidParameterException');
    const cleared = await associations.update('demo', made.associationId, { sessionTags: {}, sessionNameTemplate: '', transitiveSessionTags: true }, BY_KEY);
    for (const key of ['sessionTags', 'sessionNameTemplate', 'transitiveSessionTags']) assert.ok(!(key in cleared), `${key} absent`);
    const plain = await associations.create('demo', { namespace: 'ci', serviceAccount: 'b', roleArn: ROLE }, BY_KEY);
    for (const key of ['sessionTags', 'sessionNameTemplate', 'transitiveSessionTags']) assert.ok(!(key in plain), `${key} absent on an EKS-style create`);
  });
});
