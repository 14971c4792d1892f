import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoTime } from '../../src/lib/iso-time.js';

describe('isoTime', () => {
  it('formats as Date#toISOString, within a minute, across minutes and back', () => {
    const times = [0, 1_795_000_000_123, 1_795_000_000_123, 1_795_000_000_124, 1_795_000_059_999, 1_795_000_060_000, 1_795_000_000_005, 1_795_000_009_050];
    for (let i = 0; i < 2000; i++) times.push(1_795_000_000_000 + Math.floor(Math.random() * 180_000));
    for (const ms of times) assert.equal(isoTime(ms), new Date(ms).toISOString());
  });

  it('formats times outside four-digit years and fractions of a millisecond as Date#toISOString does', () => {
    for (const ms of [-1, -62_198_755_200_000, 253_402_300_799_999, 253_402_300_800_000, 1_795_000_000_123.7]) {
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    }
  });
});
