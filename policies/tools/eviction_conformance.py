#!/usr/bin/env python3
"""Differential check of eviction policies at the core-Wasm ABI level.

Drives each given core module (the pre-component `.wasm` that `build` feeds to
`wasm-tools component new`) through the canonical-ABI exports of
`rmhost:policy/eviction@0.1.0` or `@0.2.0` (which gets a fourth, fingerprint word per
event) with random event batches, the way the host drives a
cache (dense smallest-free ids, victims removed in the next batch, plus some invalid
events), and checks every answer against a transliteration of the host's native LRU
(host/abi/src/lru.rs). Used to hold lru-c (C) to the same victims as the Rust lru.

  python3 -m pip install wasmtime
  python3 policies/tools/eviction_conformance.py target/build/lru-c/lru-c.core.wasm \
      target/wasm32-unknown-unknown/release/lru.wasm
"""

import random
import struct
import sys

import wasmtime

NIL = 0xFFFF_FFFF


class NativeLru:
    """host/abi/src/lru.rs, line for line."""

    def __init__(self):
        self.nodes = {}  # id -> [prev, next, size]
        self.head = self.tail = NIL

    def _unlink(self, i):
        prev, nxt, _ = self.nodes[i]
        if prev == NIL:
            self.head = nxt
        else:
            self.nodes[prev][1] = nxt
        if nxt == NIL:
            self.tail = prev
        else:
            self.nodes[nxt][0] = prev

    def _push_front(self, i):
        old = self.head
        self.nodes[i][0] = NIL
        self.nodes[i][1] = old
        if old == NIL:
            self.tail = i
        else:
            self.nodes[old][0] = i
        self.head = i

    def _touch(self, i, size):
        if i not in self.nodes:
            return
        if size is not None:
            self.nodes[i][2] = size
        if self.head != i:
            self._unlink(i)
            self._push_front(i)

    def observe(self, events, bytes_to_free, max_count):
        for k in range(0, len(events) - len(events) % 3, 3):
            i, size, meta = events[k : k + 3]
            kind = (meta >> 8) & 0xFF
            if i >= NIL or kind > 3:
                continue
            if kind == 0:
                if i in self.nodes:
                    self._touch(i, size)
                else:
                    self.nodes[i] = [NIL, NIL, size]
                    self._push_front(i)
            elif kind in (1, 2):
                self._touch(i, size if kind == 2 else None)
            elif i in self.nodes:
                self._unlink(i)
                del self.nodes[i]
        out, freed, cur = [], 0, self.tail
        if bytes_to_free == 0:
            return out
        while cur != NIL and freed < bytes_to_free and len(out) < max_count:
            out.append(cur)
            freed = min(freed + self.nodes[cur][2], 2**64 - 1)
            cur = self.nodes[cur][0]
        return out


class CorePolicy:
    """One instance of a core module exporting the eviction interface's canonical ABI."""

    def __init__(self, engine, path):
        self.store = wasmtime.Store(engine)
        inst = wasmtime.Instance(self.store, wasmtime.Module.from_file(engine, path), [])
        ex = inst.exports(self.store)
        self.mem = ex["memory"]
        self.realloc = ex["cabi_realloc"]
        # rmhost:policy@0.2.0 modules get a fourth word per event (the key fingerprint;
        # here the id), 0.1.0 modules the three the model reads.
        version = "0.2.0" if "rmhost:policy/eviction@0.2.0#observe" in ex else "0.1.0"
        self.v02 = version == "0.2.0"
        self.configure_fn = ex[f"rmhost:policy/eviction@{version}#configure"]
        self.observe_fn = ex[f"rmhost:policy/eviction@{version}#observe"]
        self.post = ex[f"cabi_post_rmhost:policy/eviction@{version}#observe"]

    def configure(self, cap, expected):
        self.configure_fn(self.store, cap, expected)

    def observe(self, events, bytes_to_free, max_count):
        if self.v02:
            whole = len(events) - len(events) % 3
            events = [w for k in range(0, whole, 3) for w in events[k : k + 3] + [events[k]]] + events[whole:]
        data = struct.pack(f"<{len(events)}Q", *events)
        ptr = self.realloc(self.store, 0, 0, 8, len(data)) if data else 8
        if data:
            self.mem.write(self.store, data, ptr)
        # i64 parameters are signed in the core ABI.
        signed = bytes_to_free - 2**64 if bytes_to_free >= 2**63 else bytes_to_free
        ret = self.observe_fn(self.store, ptr, len(events), signed, max_count)
        rptr, rlen = struct.unpack("<II", self.mem.read(self.store, ret, ret + 8))
        out = list(struct.unpack(f"<{rlen}Q", self.mem.read(self.store, rptr, rptr + 8 * rlen)))
        self.post(self.store, ret)
        return out


def enc(kind, i, size=0, prio=0, at=0):
    return [i, size, ((at & 0xFFFF_FFFF_FFFF) << 16) | (kind << 8) | prio]


def run(paths, seeds=30, rounds=300):
    engine = wasmtime.Engine()
    for seed in range(1, seeds + 1):
        rng = random.Random(seed)
        model = NativeLru()
        subjects = [(p, CorePolicy(engine, p)) for p in paths]
        cap = rng.randint(40, 240)
        for _, s in subjects:
            s.configure(cap * 8, rng.choice([0, 10, 1000]))
        live, used, pending = {}, 0, []
        for rnd in range(rounds):
            b = []
            for i in pending:
                used -= live.pop(i)
                b += enc(3, i)
            for _ in range(rng.randint(0, 64)):
                r = rng.randrange(100)
                ids = sorted(live)
                if r < 35 or not ids:
                    i = next(k for k in range(len(live) + 1) if k not in live)
                    live[i] = rng.randint(1, 16)
                    used += live[i]
                    b += enc(0, i, live[i], rng.randrange(4), rnd)
                elif r < 80:
                    b += enc(1, rng.choice(ids), 0, 0, rnd)
                elif r < 90:
                    i = rng.choice(ids)
                    used -= live[i]
                    live[i] = rng.randint(1, 16)
                    used += live[i]
                    b += enc(2, i, live[i], 1, rnd)
                elif r < 95:
                    i = rng.choice(ids)
                    used -= live.pop(i)
                    b += enc(3, i)
                else:  # invalid on purpose: every implementation must ignore it alike
                    b += rng.choice([enc(1, 5000), enc(3, 7000), [1, 1, 0x4200], enc(1, NIL), [2**40, 1, 0]])
            if rng.random() < 0.05:
                b += [3, 3]  # trailing partial event
            need = max(used - cap, 0) if rng.random() < 0.9 else rng.choice([0, 2**64 - 1])
            mx = rng.randint(0, 20)
            want = model.observe(b, need, mx)
            for path, s in subjects:
                got = s.observe(b, need, mx)
                if got != want:
                    sys.exit(f"FAIL {path}: seed {seed} round {rnd}: got {got}, native LRU says {want}")
            pending = [i for i in want if i in live]
    print(f"eviction conformance: {len(paths)} module(s) x {seeds} seeds x {rounds} batches agree with the native LRU")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    run(sys.argv[1:])
