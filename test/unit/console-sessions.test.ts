// Console sessions and sign-in, with a stepped clock: a session ends at its
// fixed lifetime (use does not extend it), the store keeps no usable cookie,
// CSRF tokens compare exactly, and sign-in attempts are throttled per address
// and overall, then allowed again once a token has come back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COOKIE, csrfMatches, readCookie, sessionCookie, SessionStore } from '../../src/console/sessions.js';
import { SignInThrottle, verifyAdminKey } from '../../src/console/sign-in.js';

test('a session lives for its fixed lifetime, not extended by use, and is forgotten after', () => {
  let now = 1_000_000;
  const store = new SessionStore(60_000, () => now);
  const { id, session } = store.create('AKIAADMIN');
  assert.equal(session.accessKeyId, 'AKIAADMIN');
  assert.equal(session.expiresAt, 1_060_000);
  now += 59_999;
  assert.equal(store.get(id), session, 'still live a millisecond before the end');
  now += 1;
  assert.equal(store.get(id), undefined, 'ended at its lifetime');
  now -= 10_000;
  assert.equal(store.get(id), undefined, 'an ended session is forgotten, not revived');
});

test('ids and CSRF tokens are random and unrelated; a deleted or unknown id has no session', () => {
  const store = new SessionStore(60_000);
  const a = store.create('AKIAADMIN');
  const b = store.create('AKIAADMIN');
  assert.notEqual(a.id, b.id);
  assert.notEqual(a.session.csrf, b.session.csrf);
  assert.notEqual(a.id, a.session.csrf);
  assert.match(a.id, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  assert.equal(store.get(undefined), undefined);
  assert.equal(store.get(`${a.id}x`), undefined);
  store.delete(a.id);
  assert.equal(store.get(a.id), undefined);
  assert.equal(store.get(b.id), b.session);
});

test('the store holds only the ids’ digests', () => {
  const store = new SessionStore(60_000);
  const { id } = store.create('AKIAADMIN');
  const held = [...(store as unknown as { sessions: Map<string, unknown> }).sessions.keys()];
  assert.equal(held.length, 1);
  assert.notEqual(held[0], id);
  assert.match(held[0]!, /^[0-9a-f]{64}$/);
});

test('a full store (1000) drops expired sessions first, then the oldest live one', () => {
  let now = 0;
  const store = new SessionStore(1000, () => now);
  const expired = store.create('AKIA0');
  now = 500;
  const oldestLive = store.create('AKIA1');
  for (let i = 2; i < 1000; i++) store.create('AKIA2');
  now = 1200;
  store.create('AKIA3');
  assert.equal(store.get(expired.id), undefined);
  assert.equal(store.get(oldestLive.id)?.accessKeyId, 'AKIA1', 'the expired one made room; no live session was dropped');
  const newest = store.create('AKIA4');
  assert.equal(store.get(oldestLive.id), undefined, 'full of live sessions: the oldest made room');
  assert.equal(store.get(newest.id)?.accessKeyId, 'AKIA4');
});

test('CSRF tokens match only exactly', () => {
  const { session } = new SessionStore(60_000).create('AKIAADMIN');
  assert.equal(csrfMatches(session, session.csrf), true);
  assert.equal(csrfMatches(session, undefined), false);
  assert.equal(csrfMatches(session, ''), false);
  assert.equal(csrfMatches(session, session.csrf.slice(1)), false);
  assert.equal(csrfMatches(session, `${session.csrf.slice(0, -1)}${session.csrf.endsWith('A') ? 'B' : 'A'}`), false);
});

test('the session cookie is HttpOnly, SameSite=Strict, Secure only under TLS, and read back from a Cookie header', () => {
  assert.equal(sessionCookie('abc', 900, false), `${COOKIE}=abc; Path=/; Max-Age=900; HttpOnly; SameSite=Strict`);
  assert.equal(sessionCookie('abc', 900, true), `${COOKIE}=abc; Path=/; Max-Age=900; HttpOnly; SameSite=Strict; Secure`);
  assert.equal(sessionCookie('', 0, true), `${COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure`);
  assert.equal(readCookie(`other=1; ${COOKIE}=abc; x=2`, COOKIE), 'abc');
  assert.equal(readCookie(`${COOKIE}x=abc`, COOKIE), undefined);
  assert.equal(readCookie(undefined, COOKIE), undefined);
});

test('an admin key is verified by its secret; an unknown id or a wrong secret is refused', () => {
  const keys = new Map([['AKIAADMIN', { accessKeyId: 'AKIAADMIN', secretAccessKey: 's3cret' }]]);
  const lookup = (id: string) => keys.get(id);
  assert.equal(verifyAdminKey(lookup, 'AKIAADMIN', 's3cret'), 'AKIAADMIN');
  assert.equal(verifyAdminKey(lookup, 'AKIAADMIN', 's3cre'), undefined);
  assert.equal(verifyAdminKey(lookup, 'AKIAADMIN', ''), undefined);
  assert.equal(verifyAdminKey(lookup, 'AKIAOTHER', 's3cret'), undefined);
  assert.equal(verifyAdminKey(lookup, '', 'no such key'), undefined, 'the stand-in secret of an unknown id opens nothing');
});

test('sign-in attempts: a burst per address, then one per window; other addresses are not held back', () => {
  let now = 0;
  const throttle = new SignInThrottle({ perAddress: { rate: 1 / 12, burst: 5 }, overall: { rate: 10, burst: 20 } }, () => now);
  for (let i = 0; i < 5; i++) assert.equal(throttle.allow('10.0.0.1'), true, `attempt ${i + 1}`);
  assert.equal(throttle.allow('10.0.0.1'), false, 'past the burst');
  assert.equal(throttle.allow('10.0.0.2'), true, 'another address has its own burst');
  assert.equal(throttle.retryAfterSeconds, 12);
  now += 11_900;
  assert.equal(throttle.allow('10.0.0.1'), false, 'before the window is over');
  now += 101;
  assert.equal(throttle.allow('10.0.0.1'), true, 'one more after the window');
  assert.equal(throttle.allow('10.0.0.1'), false);
});

test('sign-in attempts: the overall limit holds many addresses back together', () => {
  let now = 0;
  const throttle = new SignInThrottle({ perAddress: { rate: 1, burst: 5 }, overall: { rate: 2, burst: 3 } }, () => now);
  assert.deepEqual(['a', 'b', 'c', 'd'].map((address) => throttle.allow(address)), [true, true, true, false]);
  assert.equal(throttle.retryAfterSeconds, 1, 'the slower bucket (per address, 1 a second) says how long');
  now += 500;
  assert.equal(throttle.allow('e'), true);
});
