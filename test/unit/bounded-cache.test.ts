// The bounded caches behind verified tokens, association lookups, pod
// liveness and signing keys: the bound holds under churn, entries in use
// outlive entries not in use, and deadlines are kept (clock injected).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedMap, ExpiringCache } from '../../src/lib/bounded-cache.js';

describe('BoundedMap', () => {
  it('never holds more than its bound, however many keys pass through', () => {
    const map = new BoundedMap<string, number>(100);
    let largest = 0;
    for (let i = 0; i < 10_000; i++) {
      map.set(`k${i}`, i);
      largest = Math.max(largest, map.size);
    }
    assert.equal(largest, 100);
    assert.equal(map.get('k9999'), 9999, 'the newest entry is kept');
    assert.equal(map.get('k0'), undefined, 'the oldest are gone');
  });

  it('keeps an entry that is read while newer ones arrive, and drops the ones nobody read', () => {
    const map = new BoundedMap<string, string>(4);
    map.set('hot', 'h');
    map.set('cold', 'c');
    for (let i = 0; i < 20; i++) {
      assert.equal(map.get('hot'), 'h', `read ${i}`);
      map.set(`new${i}`, 'n');
    }
    assert.equal(map.get('cold'), undefined);
    assert.ok(map.size <= 4);
  });

  it('replaces a value without counting the key twice, wherever the key was', () => {
    const map = new BoundedMap<string, number>(4);
    map.set('a', 1);
    map.set('b', 2);
    map.set('c', 3); // a and b are now the older generation
    map.set('a', 10);
    map.set('c', 30);
    assert.equal(map.size, 3);
    assert.deepEqual([map.get('a'), map.get('b'), map.get('c')], [10, 2, 30]);
    map.delete('b');
    assert.equal(map.get('b'), undefined);
    assert.equal(map.size, 2);
  });

  it('tells a stored undefined from a missing key only by its absence, and stores nothing with a bound of 0', () => {
    const map = new BoundedMap<string, number | undefined>(4);
    map.set('u', undefined);
    assert.equal(map.get('u'), undefined);
    assert.equal(map.size, 1);
    const none = new BoundedMap<string, number>(0);
    none.set('a', 1);
    assert.equal(none.get('a'), undefined);
    assert.equal(none.size, 0);
  });
});

describe('ExpiringCache', () => {
  it('answers until each entry\'s own deadline, then forgets it', () => {
    let now = 1_000;
    const cache = new ExpiringCache<string, string>(10, () => now);
    cache.set('short', 's', 1_500);
    cache.set('long', 'l', 5_000);
    assert.equal(cache.get('short'), 's');
    now = 1_500;
    assert.equal(cache.get('short'), undefined, 'the deadline itself is past');
    assert.equal(cache.get('long'), 'l');
    assert.equal(cache.size, 1, 'an expired entry that was read is dropped');
  });

  it('keeps nothing whose deadline has passed, and remembers null as an answer', () => {
    const cache = new ExpiringCache<string, string | null>(10, () => 2_000);
    cache.set('late', 'x', 2_000);
    assert.equal(cache.get('late'), undefined);
    assert.equal(cache.size, 0);
    cache.set('none', null, 3_000);
    assert.equal(cache.get('none'), null);
  });

  it('holds its bound under a stream of keys never seen twice', () => {
    const cache = new ExpiringCache<string, number>(1_000, () => 0);
    for (let i = 0; i < 50_000; i++) cache.set(`token-${i}`, i, 60_000);
    assert.ok(cache.size <= 1_000);
    assert.equal(cache.get('token-49999'), 49_999);
  });
});
