// The readiness monitor's decisions: what a dependency's state says in
// /readyz, and how probes are scheduled (with real timers, kept short).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { silentLogger } from '../../src/lib/logger.js';
import { DependencyMonitor, readinessProblem } from '../../src/server/readiness.js';

const check = { cluster: 'demo', dependency: 'signing-keys', describe: 'jwksUri https://issuer/jwks' } as const;

test('a dependency keeps the server from being ready until it has answered, and names why while it fails', () => {
  assert.equal(readinessProblem(check, { kind: 'unknown' }), 'cluster demo: signing-keys (jwksUri https://issuer/jwks): not checked yet');
  assert.equal(readinessProblem(check, { kind: 'down', reason: 'fetch failed (ECONNREFUSED)' }), 'cluster demo: signing-keys (jwksUri https://issuer/jwks): fetch failed (ECONNREFUSED)');
  assert.equal(readinessProblem(check, { kind: 'up' }), undefined);
});

test('the monitor probes again sooner while failing, times out a hung probe, and reports each result as a gauge', async () => {
  const registry = new Registry();
  let answering = false;
  let probes = 0;
  const monitor = new DependencyMonitor({
    checks: [
      {
        ...check,
        probe: async () => {
          probes++;
          if (!answering) throw new Error('fetch failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) });
        },
      },
      { cluster: 'demo', dependency: 'api-server', describe: 'https://api', probe: () => new Promise<void>(() => undefined) },
    ],
    registry,
    logger: silentLogger(),
    timing: { healthyIntervalMs: 60_000, failingIntervalMs: 20, timeoutMs: 50 },
  });
  try {
    await monitor.start();
    assert.deepEqual(monitor.problems(), [
      'cluster demo: signing-keys (jwksUri https://issuer/jwks): fetch failed (ECONNREFUSED)',
      'cluster demo: api-server (https://api): no answer within 50 ms',
    ]);
    answering = true;
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(monitor.problems(), ['cluster demo: api-server (https://api): no answer within 50 ms']);
    const settled = probes;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(probes, settled, 'an answering dependency waits the healthy interval');
    const gauge = await registry.getSingleMetric('pod_identity_dependency_up')!.get();
    assert.deepEqual(
      gauge.values.map((v) => [v.labels.dependency, v.value]),
      [
        ['signing-keys', 1],
        ['api-server', 0],
      ],
    );
  } finally {
    monitor.close();
  }
});
