import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { hotCounter, hotHistogram } from '../../src/lib/metrics.js';

const BUCKETS = [0.001, 0.01, 0.1];

describe('hot metrics', () => {
  it('a hot histogram exposes what prom-client\'s Histogram exposes for the same observations', async () => {
    const hot = new Registry();
    const reference = new Registry();
    const fast = hotHistogram(hot, { name: 'latency_seconds', help: 'latency', labelName: 'operation', buckets: BUCKETS });
    const slow = new Histogram({ name: 'latency_seconds', help: 'latency', labelNames: ['operation'], buckets: BUCKETS, registers: [reference] });
    for (const [operation, seconds] of [['A', 0.0005], ['A', 0.001], ['A', 0.05], ['B', 3], ['A', 0.2]] as const) {
      fast.observe(operation, seconds);
      slow.observe({ operation }, seconds);
    }
    const lines = (text: string) => text.split('\n').filter((line) => line.startsWith('latency_seconds')).sort();
    assert.deepEqual(lines(await hot.metrics()), lines(await reference.metrics()));
    assert.ok((await hot.metrics()).includes('latency_seconds_bucket{le="0.001",operation="A"} 2'));
  });

  it('workers\' hot histograms and counters add up in the primary\'s aggregate', async () => {
    const workers = [new Registry(), new Registry()];
    for (const [i, registry] of workers.entries()) {
      const latency = hotHistogram(registry, { name: 'latency_seconds', help: 'latency', labelName: 'operation', buckets: BUCKETS });
      const requests = hotCounter(registry, { name: 'requests_total', help: 'requests', labelNames: ['operation', 'status'] });
      latency.observe('A', 0.005 * (i + 1));
      requests.add('A', '200');
      requests.add('A', i === 0 ? '200' : '403');
    }
    const text = await AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON()))).metrics();
    assert.match(text, /^latency_seconds_count\{operation="A"\} 2$/m);
    assert.match(text, /^latency_seconds_bucket\{le="0.01",operation="A"\} 2$/m);
    assert.match(text, /^latency_seconds_bucket\{le="0.001",operation="A"\} 0$/m);
    assert.match(text, /^requests_total\{operation="A",status="200"\} 3$/m);
    assert.match(text, /^requests_total\{operation="A",status="403"\} 1$/m);
  });
});
