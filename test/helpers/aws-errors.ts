// What the tests expect of an AWS SDK call that must fail: its error name (the
// wire's `__type`) and HTTP status, as the SDK reports them.
import assert from 'node:assert/strict';

export async function rejectsWith(promise: Promise<unknown>, name: string, status: number): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    const e = error as Error & { $metadata?: { httpStatusCode?: number } };
    assert.equal(e.name, name, e.message);
    assert.equal(e.$metadata?.httpStatusCode, status);
    return e;
  }
  assert.fail(`expected ${name}`);
}
