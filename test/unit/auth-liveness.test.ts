// The pod liveness check's caching and single-flight logic, with its pod
// lookup injected (the lookup through a real API server is exercised in
// test/integration/eks-auth-kube).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PodIdentityClaims } from '../../src/auth/claims.js';
import { podLivenessCheck, type PodUidLookup } from '../../src/auth/liveness.js';
import { WireError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';

/** Pods by name in memory, answered after 5 ms; `down` makes every lookup fail. */
function podsInMemory(pods: Map<string, string>) {
  const state = { calls: 0, down: false };
  const podUid: PodUidLookup = async (_namespace, name) => {
    state.calls++;
    await new Promise((r) => setTimeout(r, 5));
    if (state.down) throw new Error('connection refused');
    return pods.get(name);
  };
  return { podUid, state };
}

const claims = (podName: string, podUid: string): PodIdentityClaims => ({ issuer: 'i', namespace: 'ns', serviceAccount: 'sa', podName, podUid, expiresAt: 0 });

describe('pod liveness check', () => {
  it('believes a live pod for the TTL, then notices its deletion', async () => {
    const pods = new Map([['web-1', 'uid-1']]);
    const { podUid, state } = podsInMemory(pods);
    let clock = 0;
    const check = podLivenessCheck({ podUid, logger: silentLogger(), aliveTtlMs: 20_000, now: () => clock });
    await Promise.all([check(claims('web-1', 'uid-1')), check(claims('web-1', 'uid-1')), check(claims('web-1', 'uid-1'))]);
    assert.equal(state.calls, 1, 'one lookup per pod at a time');
    pods.delete('web-1');
    clock += 10_000;
    await check(claims('web-1', 'uid-1'));
    clock += 11_000;
    await assert.rejects(check(claims('web-1', 'uid-1')), (e: WireError) => e.code === 'InvalidTokenException' && /no longer exists/.test(e.message));
    assert.equal(state.calls, 2);
    await assert.rejects(check(claims('web-1', 'uid-1')));
    assert.equal(state.calls, 2, 'gone is remembered');
  });

  it('a new pod with the same name does not revive an old token', async () => {
    const { podUid } = podsInMemory(new Map([['web-1', 'uid-2']]));
    const check = podLivenessCheck({ podUid, logger: silentLogger() });
    await assert.rejects(check(claims('web-1', 'uid-1')), (e: WireError) => e.code === 'InvalidTokenException');
    await check(claims('web-1', 'uid-2'));
  });

  it('an unreachable API server is ServiceUnavailableException (fail closed)', async () => {
    const { podUid, state } = podsInMemory(new Map([['web-1', 'uid-1']]));
    state.down = true;
    const check = podLivenessCheck({ podUid, logger: silentLogger() });
    await assert.rejects(check(claims('web-1', 'uid-1')), (e: WireError) => e.code === 'ServiceUnavailableException');
    state.down = false;
    await check(claims('web-1', 'uid-1'));
  });
});
