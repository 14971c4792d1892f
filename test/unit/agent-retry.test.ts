// The agent's wait between EKS Auth attempts: jittered exponential backoff,
// and a server's Retry-After (a 429 from a control plane shedding load) first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRetryAfter, retryDelayMs } from '../../src/agent/upstream.js';

test('Retry-After in whole seconds is read as ms; other forms are ignored', () => {
  assert.equal(parseRetryAfter('1'), 1000);
  assert.equal(parseRetryAfter(' 3 '), 3000);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT'), undefined);
  assert.equal(parseRetryAfter('-1'), undefined);
  assert.equal(parseRetryAfter(['1', '2']), undefined);
});

test('without Retry-After the wait is random in [0, min(cap, base·2^(n-1)))', () => {
  assert.equal(retryDelayMs(1, undefined, 0.5, 100, 1000), 50);
  assert.equal(retryDelayMs(3, undefined, 0.5, 100, 1000), 200);
  assert.equal(retryDelayMs(10, undefined, 0.999, 100, 1000), 999);
  assert.equal(retryDelayMs(1, undefined, 0, 100, 1000), 0);
});

test('with Retry-After the agent waits that long first, the jitter on top, and at most 5 s of it', () => {
  assert.equal(retryDelayMs(1, 1000, 0, 100, 1000), 1000);
  assert.equal(retryDelayMs(1, 1000, 0.5, 100, 1000), 1050);
  assert.equal(retryDelayMs(2, 60_000, 0.5, 100, 1000), 5100);
});
