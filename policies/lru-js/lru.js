// LRU eviction in JavaScript for rmhost:policy@0.2.0: the same rules and the same victims
// as the Rust `lru` policy, the C `lru-c` and the host's native LRU (host/abi/src/lru.rs).
//
// Entries form a doubly-linked list in typed arrays indexed by the host's dense ids
// (head = most recently used). Insert, hit and update move an entry to the head (an insert
// of a live id counts as an update, as in the native LRU); remove unlinks it; victims are
// read from the tail until `bytesToFree` are freed or `maxCount` ids are chosen, and stay
// linked until the host's remove events arrive.
//
// The packed words are u64, which componentize-js hands over as BigInt: every word is
// decoded with BigInt operations, because a Number holds integers exactly only up to 2^53
// (an id, size or timestamp above that would be silently rounded). Sizes stay BigInt too
// (in a BigUint64Array), so a size near u64::MAX frees exactly what it says.
//
// Events are decoded as the Rust SDK does: a trailing partial event is ignored, an unknown
// kind byte skips the event, ids >= 2^32 - 1 are ignored.

const NIL = 0xffffffff; // no node (as u32::MAX in the Rust and C versions)
const MAX_ID = 0xffffffffn;
// The `expected-entries` hint pre-sizes the arrays, but only up to this many: the hint is
// a u32 and 2^32 slots would not fit in the host's memory cap; beyond it, inserts grow.
const MAX_PRESIZE = 1 << 20;

export class Lru {
  constructor() {
    this.prev = new Uint32Array(0);
    this.next = new Uint32Array(0);
    this.size = new BigUint64Array(0);
    this.live = new Uint8Array(0);
    this.head = NIL;
    this.tail = NIL;
    this.count = 0;
  }

  // Cold path: at least doubles, so growth costs O(log n) copies.
  grow(want) {
    let n = this.live.length || 64;
    while (n < want) n *= 2;
    const grown = (Type, old) => {
      const a = new Type(n);
      a.set(old);
      return a;
    };
    this.prev = grown(Uint32Array, this.prev);
    this.next = grown(Uint32Array, this.next);
    this.size = grown(BigUint64Array, this.size);
    this.live = grown(Uint8Array, this.live);
  }

  unlink(i) {
    const p = this.prev[i];
    const n = this.next[i];
    if (p === NIL) this.head = n;
    else this.next[p] = n;
    if (n === NIL) this.tail = p;
    else this.prev[n] = p;
  }

  pushFront(i) {
    const old = this.head;
    this.prev[i] = NIL;
    this.next[i] = old;
    if (old === NIL) this.tail = i;
    else this.prev[old] = i;
    this.head = i;
  }

  // An access of a live entry: a hit (size undefined) or an update.
  touch(i, size) {
    if (i >= this.live.length || !this.live[i]) return;
    if (size !== undefined) this.size[i] = size;
    if (this.head !== i) {
      this.unlink(i);
      this.pushFront(i);
    }
  }

  insert(i, size) {
    if (i >= this.live.length) this.grow(i + 1);
    if (this.live[i]) {
      // Never sent by the host; like the native LRU, an update.
      this.touch(i, size);
      return;
    }
    this.live[i] = 1;
    this.size[i] = size;
    this.pushFront(i);
    this.count++;
  }

  remove(i) {
    if (i >= this.live.length || !this.live[i]) return;
    this.unlink(i);
    this.live[i] = 0;
    this.size[i] = 0n;
    this.count--;
  }

  configure(expectedEntries) {
    const want = Math.min(Number(expectedEntries), MAX_PRESIZE);
    if (want > this.live.length) this.grow(want);
  }

  // Applies the packed events (4 words each); `events` is a BigUint64Array or an array of
  // BigInt, whichever the bindings hand over.
  apply(events) {
    const n = events.length - (events.length % 4);
    for (let k = 0; k < n; k += 4) {
      const idWord = BigInt(events[k]);
      if (idWord >= MAX_ID) continue;
      const id = Number(idWord);
      const kind = Number((BigInt(events[k + 2]) >> 8n) & 0xffn);
      switch (kind) {
        case 0:
          this.insert(id, BigInt.asUintN(64, BigInt(events[k + 1])));
          break;
        case 1:
          this.touch(id, undefined);
          break;
        case 2:
          this.touch(id, BigInt.asUintN(64, BigInt(events[k + 1])));
          break;
        case 3:
          this.remove(id);
          break;
        default:
          break; // unknown kind: skipped
      }
    }
  }

  // Least recently used first, until `bytesToFree` (BigInt) are freed or `maxCount` ids.
  victims(bytesToFree, maxCount) {
    const out = [];
    const bytes = BigInt(bytesToFree);
    const max = Number(maxCount);
    if (bytes === 0n || max === 0) return out;
    let freed = 0n;
    for (let cur = this.tail; cur !== NIL && freed < bytes && out.length < max; cur = this.prev[cur]) {
      out.push(BigInt(cur));
      freed += this.size[cur];
    }
    return out;
  }

  // Ids from least to most recently used (for tests).
  idsOldestFirst() {
    const out = [];
    for (let cur = this.tail; cur !== NIL; cur = this.prev[cur]) out.push(cur);
    return out;
  }
}

// One instance per component instance: the host makes a new instance per cache.
const lru = new Lru();

// The export of rmhost:policy/eviction@0.2.0 (componentize-js maps an exported interface
// to an exported object named after it).
export const eviction = {
  configure(_capacityBytes, expectedEntries) {
    lru.configure(expectedEntries);
  },
  observe(events, bytesToFree, maxCount) {
    lru.apply(events);
    return lru.victims(bytesToFree, maxCount);
  },
};
