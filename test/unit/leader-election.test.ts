// The decisions of the Lease-based leader election, branch by branch: what to
// write for a missing, released, own, expired or live foreign lease, and
// whether a replica still leads after each kind of attempt. (The loop around
// them runs against a real kube-apiserver in test/integration/crd-sync.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import { DEFAULT_LEASE_TIMING, leadershipAfter, nextLeaseStep, sight } from '../../src/kube/leader-election.js';

const ME = 'server-a-1f2e3d4c';
const OTHER = 'server-b-9a8b7c6d';
const T0 = Date.parse('2030-01-02T03:04:05.678Z');
const DURATION = DEFAULT_LEASE_TIMING.leaseDurationMs;

function lease(holder: string | undefined, resourceVersion = '7', extra: Partial<V1Lease['spec']> = {}): V1Lease {
  return {
    metadata: { name: 'pod-identity-crd-demo', namespace: 'pod-identity', resourceVersion },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, leaseTransitions: 2, acquireTime: '2030-01-02T03:00:00.000000Z' as unknown as Date, ...extra },
  };
}

describe('nextLeaseStep', () => {
  test('no lease: create one naming us, with MicroTime timestamps the API server parses (six fractional digits)', () => {
    const step = nextLeaseStep(undefined, undefined, T0, ME, DURATION);
    assert.equal(step.kind, 'create');
    assert.deepEqual(step.kind === 'create' && step.spec, {
      holderIdentity: ME,
      leaseDurationSeconds: 15,
      acquireTime: '2030-01-02T03:04:05.678000Z',
      renewTime: '2030-01-02T03:04:05.678000Z',
      leaseTransitions: 0,
    });
  });

  test('a free (released) lease is taken at once: one more transition', () => {
    const released = lease(undefined);
    const step = nextLeaseStep(released, sight(undefined, released, T0), T0, ME, DURATION);
    assert.equal(step.kind, 'take');
    assert.equal(step.kind === 'take' && step.spec.holderIdentity, ME);
    assert.equal(step.kind === 'take' && step.spec.leaseTransitions, 3);
    assert.equal(nextLeaseStep(lease(''), undefined, T0, ME, DURATION).kind, 'take', 'an empty holder is free too');
  });

  test('our own lease is renewed: renewTime moves, acquireTime and transitions stay', () => {
    const own = lease(ME);
    const step = nextLeaseStep(own, sight(undefined, own, T0 - 60_000), T0, ME, DURATION);
    assert.equal(step.kind, 'renew');
    if (step.kind !== 'renew') return;
    assert.equal(step.spec.holderIdentity, ME);
    assert.equal(step.spec.renewTime as unknown as string, '2030-01-02T03:04:05.678000Z');
    assert.equal(step.spec.acquireTime as unknown as string, '2030-01-02T03:00:00.000000Z');
    assert.equal(step.spec.leaseTransitions, 2);
  });

  test('a foreign lease unchanged for its duration by our clock is taken over', () => {
    const foreign = lease(OTHER);
    const seen = sight(undefined, foreign, T0);
    const step = nextLeaseStep(foreign, seen, T0 + 15_000, ME, DURATION);
    assert.equal(step.kind, 'take');
    assert.equal(step.kind === 'take' && step.spec.holderIdentity, ME);
    assert.equal(step.kind === 'take' && step.spec.leaseTransitions, 3);
    // the holder's own duration counts, not ours
    const long = lease(OTHER, '7', { leaseDurationSeconds: 60 });
    assert.equal(nextLeaseStep(long, sight(undefined, long, T0), T0 + 15_000, ME, DURATION).kind, 'wait');
  });

  test('a live foreign lease: wait, until a duration after we first saw its current version', () => {
    const foreign = lease(OTHER);
    const seen = sight(undefined, foreign, T0);
    assert.deepEqual(nextLeaseStep(foreign, seen, T0 + 14_999, ME, DURATION), { kind: 'wait', holder: OTHER, expiresAt: T0 + 15_000 });
    // a lease never seen before counts as just renewed, whatever its renewTime says (the holder's clock is not ours)
    const stale = lease(OTHER, '7', { renewTime: '2020-01-01T00:00:00.000000Z' as unknown as Date });
    assert.deepEqual(nextLeaseStep(stale, undefined, T0, ME, DURATION), { kind: 'wait', holder: OTHER, expiresAt: T0 + 15_000 });
  });
});

test('sight: the first sighting of a version is kept until the version changes', () => {
  const first = sight(undefined, lease(OTHER, '7'), T0);
  assert.deepEqual(first, { resourceVersion: '7', at: T0 });
  assert.equal(sight(first, lease(OTHER, '7'), T0 + 5_000), first, 'unchanged: still seen at T0');
  assert.deepEqual(sight(first, lease(OTHER, '8'), T0 + 5_000), { resourceVersion: '8', at: T0 + 5_000 }, 'renewed: seen anew');
  assert.equal(sight(first, undefined, T0), undefined);
});

describe('leadershipAfter', () => {
  const timing = DEFAULT_LEASE_TIMING;

  test('a written lease: leading, renewed now, next renewal after the renew interval', () => {
    assert.deepEqual(leadershipAfter('written', { leading: false }, T0, timing), { leading: true, renewedAt: T0, nextAttemptInMs: 5_000 });
  });

  test('someone else’s live lease: following, retry after the retry interval', () => {
    assert.deepEqual(leadershipAfter('waiting', { leading: true, renewedAt: T0 }, T0 + 1, timing), { leading: false, nextAttemptInMs: 2_000 });
  });

  test('a conflicting update (409: the lease changed since we read it): stop leading at once and read it again', () => {
    assert.deepEqual(leadershipAfter('conflict', { leading: true, renewedAt: T0 }, T0 + 5_000, timing), { leading: false, nextAttemptInMs: 0 });
    assert.deepEqual(leadershipAfter('conflict', { leading: false }, T0, timing), { leading: false, nextAttemptInMs: 0 });
  });

  test('no answer: a leader keeps leading until the renew deadline, never up to the lease’s expiry', () => {
    assert.deepEqual(leadershipAfter('failed', { leading: true, renewedAt: T0 }, T0 + 9_999, timing), { leading: true, renewedAt: T0, nextAttemptInMs: 2_000 });
    assert.deepEqual(leadershipAfter('failed', { leading: true, renewedAt: T0 }, T0 + 10_000, timing), { leading: false, nextAttemptInMs: 2_000 });
    assert.deepEqual(leadershipAfter('failed', { leading: false }, T0, timing), { leading: false, nextAttemptInMs: 2_000 });
    assert.ok(timing.renewDeadlineMs < timing.leaseDurationMs);
  });
});
