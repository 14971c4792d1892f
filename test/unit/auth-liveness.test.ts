// The pod liveness check's caching and single-flight logic, against a stand-in
// API server (the real one is exercised in test/integration/eks-auth-kube).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PodIdentityClaims } from '../../src/auth/claims.js';
import type { KubeClient, KubeResponse } from '../../src/kube/client.js';
import { podLivenessCheck } from '../../src/auth/liveness.js';
import { WireError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';

function standInApiServer(pods: Map<string, string>) {
  const state = { calls: 0, down: false };
  const client: KubeClient = {
    server: 'https://stand-in',
    async request(_method, path): Promise<KubeResponse> {
      state.calls++;
      await new Promise((r) => setTimeout(r, 5));
      if (state.down) throw new Error('connection refused');
      const name = decodeURIComponent(path.split('/').pop()!);
      const uid = pods.get(name);
      return uid ? { status: 200, body: { metadata: { name, uid } } } : { status: 404, body: { kind: 'Status' } };
    },
    watch() {
      return Promise.reject(new Error('the liveness check does not watch'));
    },
    close() {},
  };
  return { client, state };
}

const claims = (podName: string, podUid: string): PodIdentityClaims => ({ issuer: 'i', namespace: 'ns', serviceAccount: 'sa', podName, podUid, expiresAt: 0 });

describe('pod liveness check', () => {
  it('believes a live pod for the TTL, then notices its deletion', async () => {
    const pods = new Map([['web-1', 'uid-1']]);
    const { client, state } = standInApiServer(pods);
    let clock = 0;
    const check = podLivenessCheck({ kube: client, logger: silentLogger(), aliveTtlMs: 20_000, now: () => clock });
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
    const { client } = standInApiServer(new Map([['web-1', 'uid-2']]));
    const check = podLivenessCheck({ kube: client, logger: silentLogger() });
    await assert.rejects(check(claims('web-1', 'uid-1')), (e: WireError) => e.code === 'InvalidTokenException');
    await check(claims('web-1', 'uid-2'));
  });

  it('an unreachable API server is ServiceUnavailableException (fail closed)', async () => {
    const { client, state } = standInApiServer(new Map([['web-1', 'uid-1']]));
    state.down = true;
    const check = podLivenessCheck({ kube: client, logger: silentLogger() });
    await assert.rejects(check(claims('web-1', 'uid-1')), (e: WireError) => e.code === 'ServiceUnavailableException');
    state.down = false;
    await check(claims('web-1', 'uid-1'));
  });
});
