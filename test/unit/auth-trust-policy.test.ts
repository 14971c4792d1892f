// The trust policy a role needs for this server's principal, and reading one
// back: what `pod-identity doctor` tells an operator about a role.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateTrust, principalForTrust, trustPolicy } from '../../src/auth/trust-policy.js';

const SERVER = 'arn:aws:iam::111122223333:role/pod-identity-server';
const ROLE = 'arn:aws:iam::111122223333:role/app';

test('the policy trustPolicy prints is the one evaluateTrust accepts, also URL-encoded as GetRole answers it', () => {
  const policy = trustPolicy({ roleArn: ROLE, principalArn: SERVER });
  assert.deepEqual(evaluateTrust(policy, SERVER), { assumeRole: true, tagSession: true, notes: [] });
  assert.deepEqual(evaluateTrust(encodeURIComponent(JSON.stringify(policy)), SERVER), { assumeRole: true, tagSession: true, notes: [] });
  assert.deepEqual(evaluateTrust(policy, 'arn:aws:iam::111122223333:role/other'), { assumeRole: false, tagSession: false, notes: [] });
  assert.equal(principalForTrust('arn:aws:sts::111122223333:assumed-role/pod-identity-server/i-0abc'), SERVER);
});

test('what the policy lets through: the account, wildcards in actions, a missing TagSession, a Deny', () => {
  const doc = (statements: unknown[]) => ({ Version: '2012-10-17', Statement: statements });
  const allow = (Principal: unknown, Action: unknown, extra = {}) => ({ Effect: 'Allow', Principal, Action, ...extra });
  assert.deepEqual(evaluateTrust(doc([allow({ AWS: 'arn:aws:iam::111122223333:root' }, 'sts:*')]), SERVER), { assumeRole: true, tagSession: true, notes: [] });
  assert.deepEqual(evaluateTrust(doc([allow({ AWS: ['111122223333'] }, ['sts:AssumeRole'])]), SERVER), { assumeRole: true, tagSession: false, notes: [] });
  assert.equal(evaluateTrust(doc([allow({ Service: 'pods.eks.amazonaws.com' }, ['sts:AssumeRole', 'sts:TagSession'])]), SERVER).assumeRole, false);
  assert.equal(evaluateTrust(doc([allow('*', 'sts:assume*')]), SERVER).assumeRole, true);
  const denied = evaluateTrust(doc([allow({ AWS: SERVER }, ['sts:AssumeRole', 'sts:TagSession']), { Effect: 'Deny', Principal: { AWS: SERVER }, Action: 'sts:TagSession' }]), SERVER);
  assert.deepEqual([denied.assumeRole, denied.tagSession], [true, false]);
  const conditioned = evaluateTrust(doc([allow({ AWS: SERVER }, ['sts:AssumeRole', 'sts:TagSession'], { Condition: { StringEquals: { 'sts:ExternalId': 'x' } } })]), SERVER);
  assert.equal(conditioned.assumeRole, true);
  assert.match(conditioned.notes[0]!, /only under its conditions: .*sts:ExternalId/);
});
