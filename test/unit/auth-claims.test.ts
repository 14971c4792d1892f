import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkClaims, checkStillValid } from '../../src/auth/claims.js';
import { WireError } from '../../src/lib/errors.js';
import { podClaims, TEST_ISSUER } from '../helpers/sa-tokens.js';

const now = () => Date.now() / 1000;

function failsWith(fn: () => unknown, code: string, text?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof WireError);
    assert.equal(error.code, code);
    assert.equal(error.status, 400);
    if (text) assert.match(error.message, text);
    return true;
  });
}

describe('checkClaims', () => {
  it('accepts a pod-bound projected token and extracts its identity', () => {
    const payload = podClaims({ namespace: 'team-a', serviceAccount: 'reader', podName: 'reader-1', podUid: 'uid-1', nodeName: 'node-7' });
    const claims = checkClaims(payload, { issuer: TEST_ISSUER, now: now() });
    assert.equal(claims.namespace, 'team-a');
    assert.equal(claims.serviceAccount, 'reader');
    assert.equal(claims.podName, 'reader-1');
    assert.equal(claims.podUid, 'uid-1');
    assert.equal(claims.nodeName, 'node-7');
    assert.equal(claims.expiresAt, payload.exp);
  });

  it('accepts tokens without node claims (Kubernetes before 1.30) and a string aud', () => {
    const claims = checkClaims(podClaims({ nodeName: '', audience: 'pods.eks.amazonaws.com' }), { now: now() });
    assert.equal(claims.nodeName, undefined);
  });

  it('expired is ExpiredTokenException, within the leeway it is still valid', () => {
    failsWith(() => checkClaims(podClaims({ expiresIn: -120 }), { now: now() }), 'ExpiredTokenException');
    assert.doesNotThrow(() => checkClaims(podClaims({ expiresIn: -30 }), { now: now() }));
  });

  it('names each failed check', () => {
    const rules = { issuer: TEST_ISSUER, now: now() };
    failsWith(() => checkClaims(podClaims({ audience: ['sts.amazonaws.com'] }), rules), 'InvalidTokenException', /audience/);
    failsWith(() => checkClaims(podClaims({ issuer: 'https://evil.example' }), rules), 'InvalidTokenException', /issuer/);
    failsWith(() => checkClaims({ ...podClaims(), nbf: now() + 600 }, rules), 'InvalidTokenException', /nbf/);
    failsWith(() => checkClaims({ ...podClaims(), iat: now() + 600 }, rules), 'InvalidTokenException', /iat/);
    failsWith(() => checkClaims({ ...podClaims(), exp: 'soon' }, rules), 'InvalidTokenException', /exp/);
    failsWith(() => checkClaims({ ...podClaims(), sub: 'system:node:node-1' }, rules), 'InvalidTokenException', /sub/);
    failsWith(() => checkClaims([], rules), 'InvalidTokenException', /payload/);
  });

  it('refuses a sub that does not agree with the kubernetes.io claims', () => {
    const payload = podClaims({ namespace: 'team-a', serviceAccount: 'reader' });
    failsWith(() => checkClaims({ ...payload, sub: 'system:serviceaccount:team-b:reader' }, { now: now() }), 'InvalidTokenException', /does not match/);
    failsWith(() => checkClaims({ ...payload, sub: 'system:serviceaccount:team-a:admin' }, { now: now() }), 'InvalidTokenException', /does not match/);
  });

  it('refuses tokens that are not bound to a pod', () => {
    const payload = podClaims();
    const k8s = payload['kubernetes.io'] as Record<string, unknown>;
    const { pod: _pod, ...unbound } = k8s;
    failsWith(() => checkClaims({ ...payload, 'kubernetes.io': unbound }, { now: now() }), 'InvalidTokenException', /not bound to a pod/);
    failsWith(() => checkClaims({ ...payload, 'kubernetes.io': { ...k8s, pod: { name: 'x' } } }, { now: now() }), 'InvalidTokenException', /not bound to a pod/);
    const { 'kubernetes.io': _k, ...legacy } = payload;
    failsWith(() => checkClaims(legacy, { now: now() }), 'InvalidTokenException', /kubernetes\.io/);
  });

  it('bounds the lifetime: exp - iat over 48 h (or the cluster\'s maxTokenLifetimeSeconds) is refused, naming the check; iat is required', () => {
    const day = 86_400;
    assert.doesNotThrow(() => checkClaims(podClaims({ expiresIn: 2 * day }), { now: now() }), 'exactly 48 h is allowed');
    failsWith(() => checkClaims(podClaims({ expiresIn: 2 * day + 1 }), { now: now() }), 'InvalidTokenException', /token lifetime \(exp - iat\) of 172801 s exceeds the cluster's maxTokenLifetimeSeconds \(172800 s\)/);
    failsWith(() => checkClaims(podClaims({ expiresIn: 3650 * day }), { now: now() }), 'InvalidTokenException', /maxTokenLifetimeSeconds/);
    // issued long ago and still valid for an hour: the whole lifetime counts, not what is left
    failsWith(() => checkClaims(podClaims({ issuedAgo: 3 * day, expiresIn: 3600 }), { now: now() }), 'InvalidTokenException', /maxTokenLifetimeSeconds/);
    failsWith(() => checkClaims(podClaims({ expiresIn: 7200 }), { now: now(), maxLifetimeSeconds: 3600 }), 'InvalidTokenException', /\(3600 s\)/);
    assert.doesNotThrow(() => checkClaims(podClaims({ expiresIn: 7 * day }), { now: now(), maxLifetimeSeconds: 7 * day }));
    const { iat: _iat, ...noIat } = podClaims();
    failsWith(() => checkClaims(noIat, { now: now() }), 'InvalidTokenException', /"iat" claim is missing/);
  });

  it('checkStillValid re-checks only the clock', () => {
    const claims = checkClaims(podClaims({ expiresIn: 100 }), { now: now() });
    assert.doesNotThrow(() => checkStillValid(claims, now()));
    failsWith(() => checkStillValid(claims, now() + 200), 'ExpiredTokenException');
  });
});
