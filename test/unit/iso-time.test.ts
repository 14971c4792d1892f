import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoTime } from '../../src/lib/iso-time.js';

describe('isoTime', () => {
  it('formats as Date#toISOString, the same millisecond twice and a new one after', () => {
    for (const ms of [0, 1_795_000_000_123, 1_795_000_000_123, 1_795_000_000_124, 1_795_000_000_123]) {
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    }
  });
});
