// The tests' polling helper: what it returns, what it retries, and what its
// failure says (what, the timeout, the last error, the context).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually, GiveUp } from '../helpers/eventually.js';

test('returns the first value that is neither undefined nor false, after as many tries as that takes', async () => {
  const answers: Array<number | undefined | false> = [undefined, false, undefined, 0];
  let tries = 0;
  const value = await eventually('a number', () => answers[tries++], { intervalMs: 1 });
  assert.equal(value, 0, 'zero is a value');
  assert.equal(tries, 4);
  assert.deepEqual(await eventually('an object', async () => ({ ok: true })), { ok: true }, 'a promised value');
});

test('an error thrown by the check is retried', async () => {
  let tries = 0;
  const value = await eventually(
    'a third try',
    async () => {
      tries++;
      if (tries < 3) throw new Error(`not yet (${tries})`);
      return 'done';
    },
    { intervalMs: 1 },
  );
  assert.equal(value, 'done');
  assert.equal(tries, 3);
});

test('a timeout fails with an AssertionError naming what, the timeout, the last error and the context', async () => {
  let tries = 0;
  const started = Date.now();
  await assert.rejects(
    eventually(
      'the server ready',
      () => {
        tries++;
        if (tries === 2) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        return false;
      },
      { timeoutMs: 200, intervalMs: 20, context: () => 'server log:\nlistening' },
    ),
    (error: Error) => {
      assert.equal(error.name, 'AssertionError');
      assert.equal(error.message, 'the server ready: not within 200 ms (last error: connect ECONNREFUSED 127.0.0.1:1)\nserver log:\nlistening');
      return true;
    },
  );
  assert.ok(Date.now() - started >= 200, 'tried until the deadline');
  assert.ok(tries > 2, `kept trying after the error (${tries} tries)`);
});

test('a timeout without an error or a context says only what and the timeout', async () => {
  await assert.rejects(eventually('a log line', () => undefined, { timeoutMs: 30, intervalMs: 10 }), { name: 'AssertionError', message: 'a log line: not within 30 ms' });
});

test('a GiveUp thrown by the check ends the wait at once, with its reason and the context', async () => {
  let tries = 0;
  const started = Date.now();
  await assert.rejects(
    eventually(
      'dev printed its banner',
      () => {
        tries++;
        throw new GiveUp('dev exited with 1');
      },
      { timeoutMs: 10_000, context: () => 'listen EADDRINUSE' },
    ),
    { name: 'AssertionError', message: 'dev printed its banner: dev exited with 1\nlisten EADDRINUSE' },
  );
  assert.equal(tries, 1);
  assert.ok(Date.now() - started < 1000, 'did not wait for the deadline');
});
