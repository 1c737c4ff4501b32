// Native tests of lru.js under node (`node --test policies/lru-js/`): the decode of the
// packed words and the victims, against a plain reference LRU kept in a Map (whose
// insertion order is the recency order). The component itself is checked by
// `rmhost policy check --conformance --lru` (tests/e2e/policies.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lru, eviction } from './lru.js';

const pack = (id, size, kind, atMs = 0n, prio = 0n, fp = 0n) => [
  BigInt(id),
  BigInt(size),
  (BigInt(atMs) << 16n) | (BigInt(kind) << 8n) | BigInt(prio),
  BigInt(fp),
];

// Victims of the reference: least recently used first.
function refVictims(ref, bytes, max) {
  const out = [];
  let freed = 0n;
  for (const [id, size] of ref) {
    if (freed >= bytes || out.length >= max) break;
    out.push(BigInt(id));
    freed += size;
  }
  return bytes === 0n ? [] : out;
}

test('victims match a reference LRU over 20,000 random operations', () => {
  const lru = new Lru();
  const ref = new Map();
  let seed = 0x9e3779b97f4a7c15n;
  const rnd = () => {
    seed ^= (seed << 13n) & 0xffffffffffffffffn;
    seed ^= seed >> 7n;
    seed ^= (seed << 17n) & 0xffffffffffffffffn;
    return Number(seed % 1000000n);
  };
  const free = [];
  let nextId = 0;
  for (let op = 0; op < 20000; op++) {
    const r = rnd() % 100;
    const live = [...ref.keys()];
    let events = [];
    if (r < 40 || live.length === 0) {
      free.sort((a, b) => b - a);
      const id = free.length ? free.pop() : nextId++;
      const size = BigInt(1 + (rnd() % 4096));
      ref.set(id, size);
      events = pack(id, size, 0, op);
    } else if (r < 70) {
      const id = live[rnd() % live.length];
      const size = ref.get(id);
      ref.delete(id);
      ref.set(id, size);
      events = pack(id, size, 1, op);
    } else if (r < 80) {
      const id = live[rnd() % live.length];
      const size = BigInt(1 + (rnd() % 4096));
      ref.delete(id);
      ref.set(id, size);
      events = pack(id, size, 2, op);
    } else if (r < 88) {
      const id = live[rnd() % live.length];
      ref.delete(id);
      free.push(id);
      events = pack(id, 0, 3, op);
    }
    const bytes = r >= 88 ? BigInt(1 + (rnd() % 20000)) : 0n;
    const max = rnd() % 4 === 0 ? 1 + (rnd() % 3) : live.length;
    const got = eviction.observe(new BigUint64Array(events), bytes, max);
    lru.apply(events);
    assert.deepEqual(got, refVictims(ref, bytes, max), `op ${op}`);
    assert.deepEqual(lru.victims(bytes, max), got, `op ${op}: the module's instance and a fresh Lru agree`);
  }
  assert.deepEqual(lru.idsOldestFirst(), [...ref.keys()]);
});

test('sizes and timestamps above 2^53 are decoded exactly', () => {
  const lru = new Lru();
  const big = (1n << 63n) + 1n; // a Number would round this
  lru.apply([...pack(0, big, 0, (1n << 47n) + 3n), ...pack(1, 5, 0)]);
  assert.equal(lru.size[0], big);
  // Freeing big - 1 + 1 bytes: entry 0 alone is not enough only if its size were rounded down.
  assert.deepEqual(lru.victims(big, 10), [0n]);
  assert.deepEqual(lru.victims(big + 1n, 10), [0n, 1n]);
  // u64::MAX sizes sum past 2^64 without wrapping to a small number.
  lru.apply(pack(1, (1n << 64n) - 1n, 2));
  assert.deepEqual(lru.victims((1n << 64n) - 1n, 10), [0n, 1n]);
});

test('malformed input is skipped, as the Rust SDK skips it', () => {
  const lru = new Lru();
  lru.apply([
    ...pack(0xffffffffn, 1, 0), // id u32::MAX: ignored
    ...pack(1n << 40n, 1, 0), // id above u32: ignored
    ...pack(2, 1, 9), // unknown kind: skipped
    ...pack(3, 7, 0),
    4n, 4n, 0n, // trailing partial event: ignored
  ]);
  assert.deepEqual(lru.idsOldestFirst(), [3]);
  lru.apply(pack(5, 0, 1)); // hit of an id that is not live
  lru.apply(pack(5, 0, 3)); // remove of an id that is not live
  assert.equal(lru.count, 1);
  assert.deepEqual(lru.victims(0n, 10), []);
  assert.deepEqual(lru.victims(1n, 0), []);
});

test('configure pre-sizes within a bound, whatever the hint', () => {
  const lru = new Lru();
  lru.configure(0xffffffff);
  assert.equal(lru.live.length, 1 << 20);
  lru.apply(pack((1 << 20) + 5, 1, 0));
  assert.deepEqual(lru.idsOldestFirst(), [(1 << 20) + 5]);
});
