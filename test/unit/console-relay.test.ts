// How replicas relay their decisions to each other's consoles: batches packed
// under PostgreSQL's NOTIFY limit, the count of a batch's overflow on its last
// payload, payloads that are unreadable or a process's own ignored; and the
// feed's side: relayed decisions shown and counted, but never relayed again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecisionFeed, type RelayedDecision } from '../../src/console/feed.js';
import { packBatch, readBatch } from '../../src/console/replica-relay.js';

function decision(i: number, over: Partial<RelayedDecision> = {}): RelayedDecision {
  return { time: '2026-12-02T15:00:00.000Z', cluster: 'demo', namespace: 'shop', serviceAccount: `sa-${i}`, pod: `pod-${i}`, node: 'node-a', roleArn: 'arn:aws:iam::111122223333:role/app', outcome: 'allowed', requestId: `req-${i}`, replica: 'pod-identity-1', worker: 1, ...over };
}

test('a batch is packed into payloads under 8000 bytes, in order, with the overflow count on the last', () => {
  const decisions = Array.from({ length: 100 }, (_, i) => decision(i));
  const payloads = packBatch('me', decisions, { issued: 7, refused: 3 });
  assert.ok(payloads.length > 1, 'a hundred decisions need several payloads');
  for (const p of payloads) assert.ok(Buffer.byteLength(p) < 8000, `${Buffer.byteLength(p)} bytes`);
  const read = payloads.map((p) => readBatch(p, 'other')!);
  assert.deepEqual(read.flatMap((b) => b.d), decisions);
  assert.deepEqual(read.map((b) => b.more), [...Array(payloads.length - 1).fill(undefined), { issued: 7, refused: 3 }]);
  assert.deepEqual(packBatch('me', [], { issued: 0, refused: 0 }), []);
  assert.deepEqual(packBatch('me', [], { issued: 2, refused: 0 }).map((p) => readBatch(p, 'other')), [{ from: 'me', d: [], more: { issued: 2, refused: 0 } }]);
});

test('a decision too large for a payload on its own is left out, the rest are sent', () => {
  const payloads = packBatch('me', [decision(1), decision(2, { roleArn: 'x'.repeat(9000) }), decision(3)], { issued: 0, refused: 0 });
  assert.deepEqual(payloads.flatMap((p) => readBatch(p, 'other')!.d.map((d) => d.requestId)), ['req-1', 'req-3']);
});

test('a process skips its own payloads and anything that is not a batch', () => {
  const [payload] = packBatch('me', [decision(1)], { issued: 0, refused: 0 });
  assert.equal(readBatch(payload!, 'me'), undefined);
  assert.equal(readBatch('not json', 'other'), undefined);
  assert.equal(readBatch(JSON.stringify({ from: 'x', d: [{ ...decision(1), outcome: 'maybe' }] }), 'other'), undefined);
  assert.equal(readBatch(JSON.stringify({ from: 'x', d: [{ ...decision(1), cluster: 5 }] }), 'other'), undefined);
  assert.equal(readBatch(JSON.stringify({ from: 'x', d: [], more: { issued: -1, refused: 0 } }), 'other'), undefined);
});

test('the feed shows and counts relayed decisions, and hands only its own to the relay', () => {
  const now = Date.parse('2026-12-02T15:00:30Z');
  const feed = new DecisionFeed(() => now);
  const all: string[] = [];
  const local: string[] = [];
  feed.subscribe((d) => all.push(d.requestId));
  feed.subscribeLocal((d) => local.push(d.requestId));
  const mine = { type: 'eks-auth-decision', time: 't', requestId: 'mine', cluster: 'demo', namespace: 'shop', serviceAccount: 'a', outcome: 'allowed' };
  feed.add(mine, { host: 'pod-identity-0' });
  feed.addRelayed(decision(1, { requestId: 'theirs', outcome: 'denied', reason: 'no_association' }));
  feed.countRelayed(5, 2);
  assert.deepEqual(all, ['mine', 'theirs']);
  assert.deepEqual(local, ['mine'], 'a relayed decision is not relayed again');
  assert.deepEqual(feed.latest({}).map((d) => [d.seq, d.requestId, d.replica]), [
    [2, 'theirs', 'pod-identity-1'],
    [1, 'mine', 'pod-identity-0'],
  ]);
  assert.equal(feed.serviceAccounts({ serviceAccount: 'sa-1' })[0]?.lastFailure?.reason, 'no_association');
  assert.deepEqual(feed.perMinute(1), [{ minute: Date.parse('2026-12-02T15:00:00Z'), issued: 6, refused: 3 }]);
});
