// What the console makes of EKS Auth decision records: the display fields only,
// the feed's filters, each service account's last success and last failure,
// per-minute counts (stepped clock) and the chart drawn from them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderChart } from '../../src/console/chart.js';
import { matchesFilter, parseDecisionFilter, toConsoleDecision } from '../../src/console/decisions.js';
import { DecisionFeed } from '../../src/console/feed.js';

const ROLE = 'arn:aws:iam::111122223333:role/app';
const HOST = { host: 'pod-identity-0' };

function record(over: Record<string, unknown> = {}) {
  return {
    type: 'eks-auth-decision',
    time: '2026-12-02T15:00:00.000Z',
    requestId: 'r-1',
    cluster: 'demo',
    caller: 'AKIANODE',
    namespace: 'default',
    serviceAccount: 'app',
    podName: 'app-1',
    podUid: 'uid-1',
    node: 'node-a',
    jti: 'the-token-jti',
    tokenVerified: true,
    associationId: 'a-aaaaaaaaaaaaaaaaa',
    roleArn: ROLE,
    sessionName: 'eks-demo-app-1-x',
    accessKeyId: 'ASIAISSUEDKEY',
    outcome: 'allowed',
    latencyMs: 3,
    ...over,
  };
}

test('a decision shows its display fields and where it was made, and nothing else of the record', () => {
  const d = toConsoleDecision(record(), { host: 'pod-identity-0', worker: 2 }, 7)!;
  assert.deepEqual(d, {
    seq: 7,
    time: '2026-12-02T15:00:00.000Z',
    cluster: 'demo',
    namespace: 'default',
    serviceAccount: 'app',
    pod: 'app-1',
    node: 'node-a',
    roleArn: ROLE,
    outcome: 'allowed',
    requestId: 'r-1',
    replica: 'pod-identity-0',
    worker: 2,
  });
  assert.doesNotMatch(JSON.stringify(d), /jti|ASIAISSUEDKEY|AKIANODE/);
  const refused = toConsoleDecision(record({ outcome: 'denied', roleArn: undefined, errorType: 'ResourceNotFoundException', reason: 'no_association' }), HOST, 8)!;
  assert.equal(refused.replica, 'pod-identity-0');
  assert.equal('worker' in refused, false, 'a replica without API workers decides in its primary');
  assert.equal(refused.reason, 'no_association');
  assert.equal(refused.errorType, 'ResourceNotFoundException');
  assert.equal('roleArn' in refused, false);
  assert.equal(toConsoleDecision(record({ outcome: 'something-new' }), HOST, 9)!.outcome, 'failed', 'an unknown outcome is not shown as issued');
  assert.equal(toConsoleDecision({ type: 'association-change', time: 'x' }, HOST, 10), undefined);
});

test('filters: blank fields and unknown outcomes mean any; set fields match exactly', () => {
  assert.deepEqual(parseDecisionFilter(new URLSearchParams('cluster=&namespace=%20default%20&serviceAccount=app&outcome=maybe')), { namespace: 'default', serviceAccount: 'app' });
  assert.deepEqual(parseDecisionFilter(new URLSearchParams('outcome=denied&cluster=demo')), { cluster: 'demo', outcome: 'denied' });
  const d = toConsoleDecision(record(), HOST, 1)!;
  assert.equal(matchesFilter(d, {}), true);
  assert.equal(matchesFilter(d, { cluster: 'demo', namespace: 'default', serviceAccount: 'app', outcome: 'allowed' }), true);
  assert.equal(matchesFilter(d, { serviceAccount: 'ap' }), false);
  assert.equal(matchesFilter(d, { outcome: 'denied' }), false);
  assert.equal(matchesFilter(d, { cluster: 'other' }), false);
});

test('the feed: newest first, resumes after a sequence number, filters, and tells its subscribers', () => {
  const feed = new DecisionFeed();
  const heard: number[] = [];
  const unsubscribe = feed.subscribe((d) => heard.push(d.seq));
  feed.add(record({ serviceAccount: 'a' }), HOST);
  feed.add({ type: 'association-change', time: 'x' }, HOST);
  feed.add(record({ serviceAccount: 'b', outcome: 'denied', reason: 'no_association' }), HOST);
  feed.add(record({ serviceAccount: 'a' }), HOST);
  unsubscribe();
  feed.add(record({ serviceAccount: 'c' }), HOST);
  assert.deepEqual(heard, [1, 2, 3], 'only decisions, and none after unsubscribing');
  assert.equal(feed.lastSeq(), 4);
  assert.deepEqual(feed.latest({}).map((d) => d.seq), [4, 3, 2, 1]);
  assert.deepEqual(feed.latest({}, 2).map((d) => d.seq), [4, 3]);
  assert.deepEqual(feed.latest({}, 100, 2).map((d) => d.seq), [4, 3]);
  assert.deepEqual(feed.latest({ serviceAccount: 'a' }).map((d) => d.seq), [3, 1]);
  assert.deepEqual(feed.latest({ outcome: 'denied' }).map((d) => d.serviceAccount), ['b']);
});

test('the feed keeps the latest 500 decisions', () => {
  const feed = new DecisionFeed();
  for (let i = 0; i < 520; i++) feed.add(record({ requestId: `r-${i}` }), HOST);
  const kept = feed.latest({}, 1000);
  assert.equal(kept.length, 500);
  assert.equal(kept[0]!.requestId, 'r-519');
  assert.equal(kept.at(-1)!.requestId, 'r-20');
});

test('per service account: the last success, the last failure with its reason, most recently decided first', () => {
  const feed = new DecisionFeed();
  feed.add(record({ serviceAccount: 'app', time: 't1' }), HOST);
  feed.add(record({ serviceAccount: 'app', time: 't2', outcome: 'denied', roleArn: undefined, errorType: 'ResourceNotFoundException', reason: 'no_association' }), HOST);
  feed.add(record({ serviceAccount: 'other', time: 't3', outcome: 'denied', errorType: 'AccessDeniedException', reason: 'token_expired' }), HOST);
  feed.add(record({ serviceAccount: 'app', time: 't4' }), HOST);
  feed.add(record({ namespace: undefined, serviceAccount: undefined, outcome: 'denied', reason: 'token_invalid' }), HOST);
  const states = feed.serviceAccounts();
  assert.deepEqual(states.map((s) => s.serviceAccount), ['app', 'other'], 'a decision without a subject belongs to no service account');
  const app = states[0]!;
  assert.equal(app.lastSuccess?.time, 't4');
  assert.equal(app.lastSuccess?.roleArn, ROLE);
  assert.equal(app.lastFailure?.time, 't2');
  assert.equal(app.lastFailure?.reason, 'no_association');
  assert.equal(states[1]!.lastSuccess, undefined);
  assert.deepEqual(feed.serviceAccounts({ serviceAccount: 'other' }).map((s) => s.serviceAccount), ['other']);
  assert.deepEqual(feed.serviceAccounts({ namespace: 'nope' }), []);
});

test('per minute: issued and refused counted in the minute they happen, 30 minutes oldest first, an hour kept', () => {
  let now = Date.parse('2026-12-02T15:00:10Z');
  const feed = new DecisionFeed(() => now);
  feed.add(record(), HOST);
  feed.add(record({ outcome: 'denied' }), HOST);
  feed.add(record({ outcome: 'failed' }), HOST);
  now += 60_000;
  feed.add(record(), HOST);
  feed.add(record(), HOST);
  const minutes = feed.perMinute();
  assert.equal(minutes.length, 30);
  assert.deepEqual(minutes.at(-1), { minute: Date.parse('2026-12-02T15:01:00Z'), issued: 2, refused: 0 });
  assert.deepEqual(minutes.at(-2), { minute: Date.parse('2026-12-02T15:00:00Z'), issued: 1, refused: 2 });
  assert.deepEqual(minutes[0], { minute: Date.parse('2026-12-02T14:32:00Z'), issued: 0, refused: 0 });
  now += 61 * 60_000;
  feed.add(record(), HOST);
  assert.equal(feed.perMinute(90).filter((m) => m.issued + m.refused > 0).length, 1, 'minutes older than an hour are dropped');
});

test('the chart: a bar per count with its minute and numbers, a tidy scale, and the totals said in words', () => {
  const base = Date.parse('2026-12-02T15:00:00Z');
  const minutes = [
    { minute: base, issued: 3, refused: 0 },
    { minute: base + 60_000, issued: 0, refused: 0 },
    { minute: base + 120_000, issued: 14, refused: 6 },
  ];
  const svg = renderChart(minutes).text;
  assert.match(svg, /role="img" aria-labelledby="chart-title chart-desc"/);
  assert.match(svg, /<desc id="chart-desc">From 15:00 to 15:02 UTC: 17 issued, 6 refused\.<\/desc>/);
  assert.match(svg, /<title>15:02 UTC: 14 issued, 6 refused<\/title>/);
  assert.equal(svg.match(/<rect class="issued"/g)?.length, 2, 'no bar for a zero');
  assert.equal(svg.match(/<rect class="refused"/g)?.length, 1);
  assert.match(svg, />20<\/text>/, '14 rounds up to a scale of 20');
  const heights = [...svg.matchAll(/<rect class="issued" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.ok(Math.abs(heights[1]! / heights[0]! - 14 / 3) < 0.01, 'bar heights are proportional');
  assert.match(renderChart([{ minute: base, issued: 0, refused: 0 }]).text, />1<\/text>/, 'an empty chart still has a scale');
});
