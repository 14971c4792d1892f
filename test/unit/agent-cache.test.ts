// The credential cache against a stand-in upstream (an in-process
// CredentialSource whose answers each test scripts) and a stepped clock:
// single flight, freshness, refresh-ahead within the budget, idle and error
// eviction, serving valid credentials while upstream is down, the LRU bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CredentialCache, schedule, type CacheEvents } from '../../src/agent/cache.js';
import type { PodCredentials } from '../../src/api/credentials.js';
import { PresentedToken, type CredentialSource } from '../../src/agent/credentials.js';
import { WireError } from '../../src/lib/errors.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2025, 0, 1);

function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'k' })}.${part(claims)}.c2lnbmF0dXJl`;
}

/** a token valid for a day from T0 */
function token(name: string): string {
  return jwt({ sub: `system:serviceaccount:default:${name}`, exp: (T0 + 24 * HOUR) / 1000 });
}

class Clock {
  now = T0;
  read = () => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

type Answer = (token: string) => Promise<PodCredentials>;

/**
 * Counts calls; answers with credentials living `lifetimeMs` from the clock,
 * or what `next` says. Its answers are the decoded shape, not the agent's
 * encoded one: the cache keeps whatever its source answers and reads only
 * expiresAt.
 */
class StandInUpstream implements CredentialSource<PodCredentials> {
  calls = 0;
  issued = 0;
  readonly callsByToken = new Map<string, number>();
  next: Answer | undefined;
  constructor(
    private readonly clock: Clock,
    public lifetimeMs = HOUR,
  ) {}
  getCredentials(presented: PresentedToken): Promise<PodCredentials> {
    const token = presented.value;
    this.calls++;
    this.callsByToken.set(token, (this.callsByToken.get(token) ?? 0) + 1);
    if (this.next) return this.next(token);
    this.issued++;
    return Promise.resolve({
      accessKeyId: `ASIA${this.issued}`,
      secretAccessKey: 'secret',
      sessionToken: 'session',
      accountId: '111122223333',
      expiresAt: this.clock.now + this.lifetimeMs,
    });
  }
}

function recorder(): CacheEvents & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    hit: () => log.push('hit'),
    miss: () => log.push('miss'),
    stale: () => log.push('stale'),
    evicted: (reason) => log.push(`evicted:${reason}`),
    refreshed: (outcome) => log.push(`refreshed:${outcome}`),
  };
}

function setup(options: { maxSize?: number; maxPending?: number; qps?: number; lifetimeMs?: number; freshWaitMs?: number } = {}) {
  const clock = new Clock();
  const upstream = new StandInUpstream(clock, options.lifetimeMs);
  const events = recorder();
  const cache = new CredentialCache({
    upstream,
    maxSize: options.maxSize ?? 100,
    maxPending: options.maxPending,
    maxRefreshQps: options.qps ?? 3,
    now: clock.read,
    random: () => 0.5,
    sweepIntervalMs: 0,
    freshWaitMs: options.freshWaitMs ?? 50,
    events,
  });
  return { clock, upstream, events, cache };
}

test('a second request for the same token is answered from the cache with the same object', async () => {
  const { cache, upstream, events } = setup();
  const first = await cache.getCredentials(new PresentedToken(token('a')));
  const second = await cache.getCredentials(new PresentedToken(token('a')));
  assert.equal(upstream.calls, 1);
  assert.equal(second, first);
  assert.deepEqual(events.log, ['miss', 'hit']);
});

test('1,000 concurrent requests with one new token make exactly one upstream call', async () => {
  const { cache, upstream } = setup();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  upstream.next = async () => {
    await gate;
    return { accessKeyId: 'ASIAONE', secretAccessKey: 's', sessionToken: 't', accountId: '111122223333', expiresAt: T0 + HOUR };
  };
  const all = Array.from({ length: 1000 }, () => cache.getCredentials(new PresentedToken(token('storm'))));
  release();
  const results = await Promise.all(all);
  assert.equal(upstream.calls, 1);
  assert.ok(results.every((r) => r.accessKeyId === 'ASIAONE'));
});

test('different tokens are different entries; a token is never matched by its claims', async () => {
  const { cache, upstream } = setup();
  const a = token('same');
  const b = jwt({ sub: 'system:serviceaccount:default:same', exp: (T0 + 24 * HOUR) / 1000, jti: 'other' });
  const [ca, cb] = [await cache.getCredentials(new PresentedToken(a)), await cache.getCredentials(new PresentedToken(b))];
  assert.equal(upstream.calls, 2);
  assert.notEqual(ca.accessKeyId, cb.accessKeyId);
  assert.equal(cache.size, 2);
});

test('malformed and expired tokens are refused with 400 before any upstream call', async () => {
  const { cache, upstream, clock } = setup();
  const cases: [string, string][] = [
    ['', 'InvalidParameterException'],
    [`${token('a')}\n`, 'InvalidParameterException'],
    ['not-a-jwt', 'InvalidTokenException'],
    ['a.b.c', 'InvalidTokenException'],
    [jwt({ exp: 'soon' }), 'InvalidTokenException'],
    [jwt({ exp: (clock.now - 1000) / 1000 }), 'ExpiredTokenException'],
  ];
  for (const [value, code] of cases) {
    await assert.rejects(async () => cache.getCredentials(new PresentedToken(value)), (error: WireError) => error.code === code && error.status === 400, JSON.stringify(value));
  }
  assert.equal(upstream.calls, 0);
  assert.equal(cache.size, 0);
});

test('credentials with less than 15 minutes left are not handed out when upstream has fresher ones', async () => {
  const { cache, upstream, clock } = setup();
  const first = await cache.getCredentials(new PresentedToken(token('a')));
  clock.advance(44 * MIN);
  assert.equal(await cache.getCredentials(new PresentedToken(token('a'))), first, '16 min left: still served');
  clock.advance(2 * MIN);
  const fresh = await cache.getCredentials(new PresentedToken(token('a')));
  assert.notEqual(fresh, first);
  assert.equal(fresh.expiresAt, clock.now + HOUR);
  assert.equal(upstream.calls, 2);
});

test('short-lived credentials (under 30 min) are served until half their lifetime', async () => {
  const { cache, upstream, clock } = setup({ lifetimeMs: 15 * MIN });
  const first = await cache.getCredentials(new PresentedToken(token('a')));
  clock.advance(7 * MIN);
  assert.equal(await cache.getCredentials(new PresentedToken(token('a'))), first);
  clock.advance(1 * MIN);
  assert.notEqual(await cache.getCredentials(new PresentedToken(token('a'))), first);
  assert.equal(upstream.calls, 2);
});

test('schedule: refresh at 40-50 % of the lifetime, hand out until 15 min before expiry', () => {
  const now = T0;
  assert.deepEqual(schedule(now, now + HOUR, 15 * MIN, 0), { refreshAt: now + 30 * MIN, freshUntil: now + 45 * MIN });
  assert.deepEqual(schedule(now, now + HOUR, 15 * MIN, 1), { refreshAt: now + 24 * MIN, freshUntil: now + 45 * MIN });
  assert.deepEqual(schedule(now, now + 12 * HOUR, 15 * MIN, 0), { refreshAt: now + 6 * HOUR, freshUntil: now + 12 * HOUR - 15 * MIN });
  // already expired: refetch on the next request
  assert.deepEqual(schedule(now, now - 1, 15 * MIN, 0), { refreshAt: now, freshUntil: now });
});

test('background refresh at about half the lifetime replaces credentials before anyone waits', async () => {
  const { cache, upstream, clock, events } = setup();
  const first = await cache.getCredentials(new PresentedToken(token('a')));
  clock.advance(20 * MIN);
  await cache.getCredentials(new PresentedToken(token('a')));
  await cache.sweep();
  assert.equal(upstream.calls, 1, 'not due yet at 20 min');
  clock.advance(8 * MIN); // 28 min: past 45 % (random 0.5)
  await cache.sweep();
  assert.equal(upstream.calls, 2);
  const now = await cache.getCredentials(new PresentedToken(token('a')));
  assert.notEqual(now, first);
  assert.equal(now.expiresAt, T0 + 28 * MIN + HOUR);
  assert.ok(events.log.includes('refreshed:ok'));
  assert.equal(events.log.at(-1), 'hit');
});

test('background refreshes stay within --max-service-qps, oldest first', async () => {
  const { cache, upstream, clock } = setup({ qps: 3 });
  for (let i = 0; i < 10; i++) {
    await cache.getCredentials(new PresentedToken(token(`t${i}`)));
    clock.advance(10);
  }
  clock.advance(28 * MIN);
  for (let i = 0; i < 10; i++) await cache.getCredentials(new PresentedToken(token(`t${i}`))); // all in use
  const before = upstream.calls;
  await cache.sweep();
  assert.equal(upstream.calls - before, 3, 'burst of 3');
  await cache.sweep();
  assert.equal(upstream.calls - before, 3, 'no budget left in the same instant');
  clock.advance(1000);
  await cache.sweep();
  assert.equal(upstream.calls - before, 6);
  clock.advance(1000);
  await cache.sweep();
  clock.advance(1000);
  await cache.sweep();
  assert.equal(upstream.calls - before, 10, 'every due entry refreshed once');
});

test('entries nobody asked for lately are dropped, not refreshed', async () => {
  const { cache, upstream, clock, events } = setup();
  await cache.getCredentials(new PresentedToken(token('dead-pod')));
  await cache.getCredentials(new PresentedToken(token('live-pod')));
  for (let minute = 0; minute < 180; minute += 5) {
    clock.advance(5 * MIN);
    await cache.getCredentials(new PresentedToken(token('live-pod')));
    await cache.sweep();
  }
  assert.equal(cache.size, 1);
  assert.deepEqual(events.log.filter((e) => e.startsWith('evicted')), ['evicted:idle']);
  // refreshed ahead while it might still be in use (within the idle hour), then dropped for good
  assert.equal(upstream.callsByToken.get(token('dead-pod')), 2);
  assert.ok(upstream.callsByToken.get(token('live-pod'))! >= 6, 'the live pod is refreshed every half hour');
});

for (const code of ['AccessDeniedException', 'InvalidTokenException', 'ExpiredTokenException', 'ResourceNotFoundException'] as const) {
  test(`${code} from upstream on a refresh evicts the entry`, async () => {
    const { cache, upstream, clock, events } = setup();
    await cache.getCredentials(new PresentedToken(token('a')));
    clock.advance(28 * MIN);
    upstream.next = () => Promise.reject(new WireError(code, 'no'));
    await cache.getCredentials(new PresentedToken(token('a')));
    await cache.sweep();
    assert.equal(cache.size, 0);
    assert.ok(events.log.includes('evicted:upstream-denied'));
    await assert.rejects(async () => cache.getCredentials(new PresentedToken(token('a'))), (e: WireError) => e.code === code);
    assert.equal(upstream.calls, 3, 'the next request asks upstream again');
  });
}

test('an evicting error on a request removes valid cached credentials too', async () => {
  const { cache, upstream, clock } = setup();
  await cache.getCredentials(new PresentedToken(token('a')));
  clock.advance(50 * MIN); // stale: the request goes upstream
  upstream.next = () => Promise.reject(new WireError('AccessDeniedException', 'association removed'));
  await assert.rejects(async () => cache.getCredentials(new PresentedToken(token('a'))), (e: WireError) => e.code === 'AccessDeniedException');
  assert.equal(cache.size, 0);
});

test('while upstream is down, cached credentials are served as long as they are valid', async () => {
  const { cache, upstream, clock, events } = setup();
  const held = await cache.getCredentials(new PresentedToken(token('a')));
  upstream.next = () => Promise.reject(new WireError('ServiceUnavailableException', 'EKS Auth is unreachable', { status: 503 }));
  clock.advance(28 * MIN);
  await cache.sweep(); // failed refresh keeps the entry
  assert.equal(cache.size, 1);
  assert.ok(events.log.includes('refreshed:error'));
  clock.advance(22 * MIN); // 10 min left: not fresh, but valid
  assert.equal(await cache.getCredentials(new PresentedToken(token('a'))), held);
  assert.equal(events.log.at(-1), 'stale');
  clock.advance(10 * MIN); // expired
  await assert.rejects(async () => cache.getCredentials(new PresentedToken(token('a'))), (e: WireError) => e.status === 503);
});

test('a failed background refresh is retried after a jittered interval, not on every sweep', async () => {
  const { cache, upstream, clock } = setup();
  await cache.getCredentials(new PresentedToken(token('a')));
  upstream.next = () => Promise.reject(new WireError('ThrottlingException', 'slow down'));
  clock.advance(28 * MIN);
  await cache.getCredentials(new PresentedToken(token('a')));
  await cache.sweep();
  const calls = upstream.calls;
  clock.advance(1000);
  await cache.sweep();
  assert.equal(upstream.calls, calls, 'no retry one second later');
  clock.advance(60_000);
  await cache.sweep();
  assert.equal(upstream.calls, calls + 1, 'retried after about a minute');
});

test('a slow upstream does not hold a request that has valid credentials at hand', async () => {
  const { cache, upstream, clock, events } = setup({ freshWaitMs: 30 });
  const held = await cache.getCredentials(new PresentedToken(token('a')));
  clock.advance(50 * MIN);
  let answer!: (c: PodCredentials) => void;
  upstream.next = () => new Promise((resolve) => (answer = resolve));
  const started = performance.now();
  assert.equal(await cache.getCredentials(new PresentedToken(token('a'))), held);
  assert.ok(performance.now() - started < 1000);
  assert.equal(events.log.at(-1), 'stale');
  // the call goes on and its answer is used from then on
  const fresh = { ...held, accessKeyId: 'ASIALATE', expiresAt: clock.now + HOUR };
  answer(fresh);
  await new Promise((r) => setImmediate(r));
  assert.equal(await cache.getCredentials(new PresentedToken(token('a'))), fresh);
});

test('a first request whose upstream call fails leaves nothing cached; the next one asks again', async () => {
  const { cache, upstream } = setup();
  upstream.next = () => Promise.reject(new WireError('InternalServerException', 'boom'));
  await assert.rejects(async () => cache.getCredentials(new PresentedToken(token('a'))), (e: WireError) => e.status === 500);
  assert.equal(cache.size, 0);
  upstream.next = undefined;
  await cache.getCredentials(new PresentedToken(token('a')));
  assert.equal(upstream.calls, 2);
});

test('the cache holds at most maxSize entries and drops the least recently used', async () => {
  const { cache, upstream, clock, events } = setup({ maxSize: 2 });
  await cache.getCredentials(new PresentedToken(token('a')));
  clock.advance(2000);
  await cache.getCredentials(new PresentedToken(token('b')));
  clock.advance(2000);
  await cache.getCredentials(new PresentedToken(token('a'))); // a is now the most recent
  await cache.getCredentials(new PresentedToken(token('c'))); // evicts b
  assert.equal(cache.size, 2);
  assert.ok(events.log.includes('evicted:capacity'));
  const calls = upstream.calls;
  await cache.getCredentials(new PresentedToken(token('a')));
  assert.equal(upstream.calls, calls, 'a still cached');
  await cache.getCredentials(new PresentedToken(token('b')));
  assert.equal(upstream.calls, calls + 1, 'b was dropped');
});

test('a cached entry whose token has expired is refused and dropped', async () => {
  const { cache, clock, events } = setup();
  const short = jwt({ exp: (T0 + 10 * MIN) / 1000 });
  await cache.getCredentials(new PresentedToken(short));
  clock.advance(10 * MIN);
  await assert.rejects(async () => cache.getCredentials(new PresentedToken(short)), (e: WireError) => e.code === 'ExpiredTokenException' && e.status === 400);
  assert.equal(cache.size, 0);
  assert.ok(events.log.includes('evicted:token-expired'));
});

test('the sweep drops entries whose token expired without refreshing them', async () => {
  const { cache, upstream, clock } = setup();
  await cache.getCredentials(new PresentedToken(jwt({ exp: (T0 + 29 * MIN) / 1000 })));
  clock.advance(29 * MIN);
  await cache.sweep();
  assert.equal(cache.size, 0);
  assert.equal(upstream.calls, 1);
});

test('tokens the server has not accepted never displace issued credentials, however many arrive', async () => {
  const { cache, upstream, events } = setup({ maxSize: 2, maxPending: 1000 });
  const a = await cache.getCredentials(new PresentedToken(token('pod-a')));
  const b = await cache.getCredentials(new PresentedToken(token('pod-b')));
  // EKS Auth hangs: every junk token waits for an answer that never comes
  upstream.next = () => new Promise<PodCredentials>(() => undefined);
  for (let i = 0; i < 500; i++) void cache.getCredentials(new PresentedToken(jwt({ exp: (T0 + HOUR) / 1000, jti: `junk-${i}` })));
  assert.equal(cache.size, 2, 'only issued credentials are in the LRU');
  assert.equal(cache.pendingCount, 500);
  assert.ok(!events.log.some((e) => e.startsWith('evicted')), 'nothing was evicted');
  assert.equal(await cache.getCredentials(new PresentedToken(token('pod-a'))), a);
  assert.equal(await cache.getCredentials(new PresentedToken(token('pod-b'))), b);
});

test('the waiting room is bounded: a new token past it is ThrottlingException without an upstream call', async () => {
  const { cache, upstream } = setup({ maxSize: 10, maxPending: 3 });
  const held = await cache.getCredentials(new PresentedToken(token('pod-a')));
  upstream.next = () => new Promise<PodCredentials>(() => undefined);
  for (let i = 0; i < 3; i++) void cache.getCredentials(new PresentedToken(token(`waiting-${i}`)));
  const calls = upstream.calls;
  await assert.rejects(async () => cache.getCredentials(new PresentedToken(token('one-too-many'))), (e: WireError) => e.code === 'ThrottlingException' && e.status === 429);
  assert.equal(upstream.calls, calls, 'no upstream call for the refused token');
  // a token already waiting joins its call instead of being refused
  const again = cache.getCredentials(new PresentedToken(token('waiting-0')));
  assert.ok(again instanceof Promise);
  assert.equal(upstream.calls, calls);
  assert.equal(await cache.getCredentials(new PresentedToken(token('pod-a'))), held, 'cached credentials are still served');
});

test('a waiting token the server accepts joins the LRU; one it refuses leaves nothing behind', async () => {
  const { cache, upstream } = setup({ maxSize: 1, maxPending: 5 });
  await cache.getCredentials(new PresentedToken(token('a')));
  upstream.next = () => Promise.reject(new WireError('InvalidTokenException', 'forged'));
  await assert.rejects(async () => cache.getCredentials(new PresentedToken(token('forged'))), (e: WireError) => e.code === 'InvalidTokenException');
  assert.equal(cache.size, 1);
  assert.equal(cache.pendingCount, 0);
  const calls = upstream.calls;
  upstream.next = undefined;
  await cache.getCredentials(new PresentedToken(token('a')));
  assert.equal(upstream.calls, calls, 'a is still cached after the refused token');
  await cache.getCredentials(new PresentedToken(token('b')));
  assert.equal(cache.size, 1, 'b, issued, took the room of the least recently used');
  assert.equal(cache.pendingCount, 0);
  await cache.getCredentials(new PresentedToken(token('a')));
  assert.equal(upstream.calls, calls + 2, 'a was evicted by issued credentials');
});
