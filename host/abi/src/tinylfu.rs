//! The W-TinyLFU algorithm (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", ACM ToS 2017; as in Caffeine and libCacheSim's `WTinyLFU`), over the
//! host's dense ids and weighted by bytes.
//!
//! - A **window** LRU (1% of the capacity in bytes) takes every new entry.
//! - The **main** space (the other 99%) is a segmented LRU: **probation** (entries admitted
//!   from the window, and entries demoted from protected) and **protected** (80% of main;
//!   entries hit while in probation). Main's victim is probation's LRU end, else
//!   protected's.
//! - A **count-min sketch** (4 rows of 4-bit counters, 16 counters per expected entry, as in
//!   Caffeine's `FrequencySketch`) counts inserts, hits and updates in main, and each
//!   admission attempt of a candidate (libCacheSim's counting; window hits are not
//!   counted). After 15 x the expected entries increments every counter is halved (the
//!   "reset" that ages history).
//! - **Admission**: when the window is over its share and main is full, the window's LRU
//!   entry (the candidate) is compared with main's victim: the candidate enters probation
//!   when its estimated frequency is strictly higher than the victim's; otherwise the
//!   candidate is the one evicted. Candidates larger than the room in main keep being
//!   compared against the next main victim until they fit or lose, so byte weights are
//!   respected.
//! - An entry larger than the window is not admitted (libCacheSim's `WTinyLFU_can_insert`):
//!   it is answered as a victim first when room is needed. With a 1% window this refuses
//!   entries of more than 1% of the capacity.
//!
//! **Keys.** The sketch is keyed by the entry's key fingerprint (`rmhost:policy@0.2.0`
//! carries one in every event), so a key that is evicted and comes back keeps its history,
//! as in Caffeine and libCacheSim. In 0.1 the contract had only reused dense ids, and this
//! policy had to key the sketch per residency, which cost it 1-3 points of miss ratio.
//!
//! **Doorkeeper** (the TinyLFU paper, section 3.4.2): a Bloom filter in front of the
//! sketch. A key's first access in a sample period only sets its doorkeeper bits; later
//! accesses count in the sketch; the estimate is the sketch's count plus one when the
//! doorkeeper holds the key. The reset halves the sketch and clears the doorkeeper, so
//! one-hit wonders never occupy sketch counters. Admission needs the candidate's estimate
//! to be strictly higher than the victim's (Caffeine's and libCacheSim's rule).
//!
//! Victims leave their queues when answered and wait, *pending*, for the host's remove
//! event, so none is answered twice; a pending id that is accessed again (the host did not
//! evict it) re-enters probation.
//!
//! This file uses only `core`/`std` so the guest `policies/wtinylfu` compiles the very same
//! code (`#[path]`): the native and the Wasm policy answer victim for victim alike.

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    None,
    Window,
    Probation,
    Protected,
    /// Answered as a victim; waiting for its remove event.
    Pending,
    /// Larger than the window: not admitted, answered first when room is needed.
    Oversize,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: u32,
    next: u32,
    size: u64,
    /// The key fingerprint: the sketch key.
    fingerprint: u64,
    queue: Queue,
}

const EMPTY: Node = Node {
    prev: NIL,
    next: NIL,
    size: 0,
    fingerprint: 0,
    queue: Queue::None,
};

/// A doubly-linked LRU threaded through the node array (head = most recent).
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    bytes: u64,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    bytes: 0,
};

/// Caffeine-style count-min sketch: `table` holds 16 four-bit counters per u64; an item's
/// four counters sit in four words chosen by four hashes.
#[derive(Debug, Clone)]
pub struct FrequencySketch {
    table: Vec<u64>,
    /// The doorkeeper's bits (a Bloom filter, 2 hashes, 8 bits per entry).
    door: Vec<u64>,
    mask: u64,
    samples: u64,
    sample_max: u64,
}

/// Accesses per sample period, per entry: Caffeine halves every 10 x entries accesses,
/// libCacheSim every 32 x main-size main-space hits; 15 x entries (all counted accesses)
/// lands closest to libCacheSim's miss ratios on the cross-check's traces.
const SAMPLE_FACTOR: u64 = 15;

const SEEDS: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];

#[inline]
fn spread(mut x: u64) -> u64 {
    // splitmix64's finaliser: every input bit reaches every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl FrequencySketch {
    /// A sketch for about `entries` distinct live items; halves its counters every
    /// `15 * entries` increments.
    pub fn new(entries: u64) -> Self {
        let entries = entries.clamp(16, 1 << 26);
        let words = entries.next_power_of_two();
        FrequencySketch {
            table: vec![0; words as usize],
            door: vec![0; (words / 8).max(1) as usize],
            mask: words - 1,
            samples: 0,
            sample_max: SAMPLE_FACTOR * entries,
        }
    }

    /// The entries it was sized for.
    pub fn entries(&self) -> u64 {
        self.sample_max / SAMPLE_FACTOR
    }

    #[inline]
    fn slot(&self, h: u64, i: usize) -> (usize, u32) {
        let mut x = h.wrapping_add(SEEDS[i]).wrapping_mul(SEEDS[i]);
        x ^= x >> 32;
        let counter = (((h & 3) << 2) + i as u64) << 2; // bit offset of the 4-bit counter
        ((x & self.mask) as usize, counter as u32)
    }

    /// The doorkeeper's two bit positions for hash `h`.
    #[inline]
    fn door_bits(&self, h: u64) -> [(usize, u64); 2] {
        let bits = (self.door.len() * 64) as u64;
        let (a, b) = (h % bits, (h >> 32).wrapping_mul(0x9e37_79b9) % bits);
        [
            ((a / 64) as usize, 1 << (a % 64)),
            ((b / 64) as usize, 1 << (b % 64)),
        ]
    }

    fn door_contains(&self, h: u64) -> bool {
        self.door_bits(h)
            .iter()
            .all(|&(w, bit)| self.door[w] & bit != 0)
    }

    /// Estimated accesses of `key` (0-16): the sketch's count, plus one when the
    /// doorkeeper holds the key.
    pub fn frequency(&self, key: u64) -> u8 {
        let h = spread(key);
        let door = u8::from(self.door_contains(h));
        door + (0..4)
            .map(|i| {
                let (w, off) = self.slot(h, i);
                ((self.table[w] >> off) & 15) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// Counts one access of `key`: the first since the last reset sets its doorkeeper
    /// bits, later ones count in the sketch. Halves every counter (and clears the
    /// doorkeeper) once enough accesses were counted.
    pub fn increment(&mut self, key: u64) {
        let h = spread(key);
        self.samples += 1;
        if !self.door_contains(h) {
            for (w, bit) in self.door_bits(h) {
                self.door[w] |= bit;
            }
        } else {
            self.count(h);
        }
        if self.samples >= self.sample_max {
            self.reset();
        }
    }

    fn count(&mut self, h: u64) {
        for i in 0..4 {
            let (w, off) = self.slot(h, i);
            if (self.table[w] >> off) & 15 != 15 {
                self.table[w] += 1 << off;
            }
        }
    }

    fn reset(&mut self) {
        let mut odd = 0u64;
        for w in &mut self.table {
            odd += u64::from((*w & 0x1111_1111_1111_1111).count_ones());
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.samples = (self.samples - (odd >> 2).min(self.samples)) >> 1;
        self.door.iter_mut().for_each(|w| *w = 0);
    }
}

/// W-TinyLFU state over dense ids. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct WTinyLfu {
    nodes: Vec<Node>,
    window: List,
    probation: List,
    protected: List,
    capacity: u64,
    window_cap: u64,
    main_cap: u64,
    protected_cap: u64,
    sketch: FrequencySketch,
    /// Live (not pending) entries, and the most seen: sizes the sketch when `configure`
    /// gave no entry count.
    live: u64,
    expected: u64,
    /// Ids in `Queue::Oversize` (stale ones are skipped).
    oversize: Vec<u32>,
}

impl Default for WTinyLfu {
    fn default() -> Self {
        Self::new()
    }
}

impl WTinyLfu {
    /// An empty policy, sized by [`WTinyLfu::configure`].
    pub fn new() -> Self {
        let mut p = WTinyLfu {
            nodes: Vec::new(),
            window: EMPTY_LIST,
            probation: EMPTY_LIST,
            protected: EMPTY_LIST,
            capacity: 0,
            window_cap: 0,
            main_cap: 0,
            protected_cap: 0,
            sketch: FrequencySketch::new(16),
            live: 0,
            expected: 0,
            oversize: Vec::new(),
        };
        p.configure(u64::MAX, 0);
        p
    }

    /// Sizes the queues (1% window, main 20% probation / 80% protected) and the sketch.
    /// `capacity_bytes == 0` means unknown: the queues are then unbounded until the host
    /// asks for victims, which still come from the window's overflow and probation first.
    pub fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        let cap = if capacity_bytes == 0 {
            u64::MAX
        } else {
            capacity_bytes
        };
        self.capacity = cap;
        self.window_cap = (cap / 100).max(1);
        self.main_cap = cap - self.window_cap;
        self.protected_cap = self.main_cap / 5 * 4 + self.main_cap % 5 * 4 / 5;
        self.expected = u64::from(expected_entries);
        if self.expected > 0 {
            self.nodes.reserve(expected_entries as usize);
        }
        self.sketch = FrequencySketch::new(self.expected.max(self.live).max(16));
    }

    /// Bytes in (window, probation, protected).
    pub fn queue_bytes(&self) -> (u64, u64, u64) {
        (
            self.window.bytes,
            self.probation.bytes,
            self.protected.bytes,
        )
    }

    /// Live entries tracked (victims awaiting their remove are not counted).
    pub fn len(&self) -> u64 {
        self.live
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn key(&self, id: u32) -> u64 {
        self.nodes[id as usize].fingerprint
    }

    /// The sketch's estimate for live `id` (tests and diagnostics).
    pub fn frequency(&self, id: u32) -> u8 {
        if (id as usize) < self.nodes.len() {
            self.sketch.frequency(self.key(id))
        } else {
            0
        }
    }

    fn list(&mut self, q: Queue) -> &mut List {
        match q {
            Queue::Window => &mut self.window,
            Queue::Probation => &mut self.probation,
            _ => &mut self.protected,
        }
    }

    fn unlink(&mut self, id: u32) {
        let Node {
            prev,
            next,
            size,
            queue,
            ..
        } = self.nodes[id as usize];
        if !matches!(queue, Queue::Window | Queue::Probation | Queue::Protected) {
            return;
        }
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let l = self.list(queue);
        if l.head == id {
            l.head = next;
        }
        if l.tail == id {
            l.tail = prev;
        }
        l.bytes -= size;
        let n = &mut self.nodes[id as usize];
        n.prev = NIL;
        n.next = NIL;
        n.queue = Queue::None;
    }

    fn push_front(&mut self, id: u32, q: Queue) {
        let size = self.nodes[id as usize].size;
        let l = self.list(q);
        let old = l.head;
        l.head = id;
        if l.tail == NIL {
            l.tail = id;
        }
        l.bytes += size;
        if old != NIL {
            self.nodes[old as usize].prev = id;
        }
        let n = &mut self.nodes[id as usize];
        n.prev = NIL;
        n.next = old;
        n.queue = q;
    }

    fn move_to(&mut self, id: u32, q: Queue) {
        self.unlink(id);
        self.push_front(id, q);
    }

    fn main_bytes(&self) -> u64 {
        self.probation.bytes + self.protected.bytes
    }

    /// Moves window overflow into probation while main has room (no eviction needed).
    fn spill_window(&mut self) {
        while self.window.bytes > self.window_cap && self.window.tail != NIL {
            let cand = self.window.tail;
            if self.main_bytes() + self.nodes[cand as usize].size > self.main_cap {
                break;
            }
            self.move_to(cand, Queue::Probation);
        }
    }

    fn demote_protected(&mut self) {
        while self.protected.bytes > self.protected_cap && self.protected.tail != NIL {
            let t = self.protected.tail;
            self.move_to(t, Queue::Probation);
        }
    }

    /// A new entry with key fingerprint `fingerprint`: into the window's head.
    pub fn on_insert(&mut self, id: u32, fingerprint: u64, size: u64) {
        if id == NIL {
            return;
        }
        if self.nodes.len() <= id as usize {
            self.nodes.resize(id as usize + 1, EMPTY);
        }
        match self.nodes[id as usize].queue {
            Queue::Window | Queue::Probation | Queue::Protected => {
                // The host never inserts a live id; treat it as an update.
                self.on_access(id, Some(size));
                return;
            }
            Queue::Pending | Queue::None => self.live += 1,
            Queue::Oversize => {}
        }
        let n = &mut self.nodes[id as usize];
        n.fingerprint = fingerprint;
        n.size = size;
        if size > self.window_cap {
            n.queue = Queue::Oversize;
            self.oversize.push(id);
            return;
        }
        self.push_front(id, Queue::Window);
        if self.expected == 0 && self.live > self.sketch.entries() * 2 {
            // Unsized: grow the sketch with the cache (its counts start over, as Caffeine's do).
            self.sketch = FrequencySketch::new(self.live * 2);
        }
        self.sketch.increment(self.key(id));
        self.spill_window();
    }

    /// A hit (`size == None`) or an update (new size) of a live entry.
    pub fn on_access(&mut self, id: u32, size: Option<u64>) {
        let Some(n) = self.nodes.get(id as usize).copied() else {
            return;
        };
        if matches!(n.queue, Queue::None | Queue::Oversize) {
            return;
        }
        // As libCacheSim: hits in the window are not counted (admission then weighs the
        // candidate's history before this stay, plus one per admission attempt).
        if n.queue != Queue::Window {
            self.sketch.increment(self.key(id));
        }
        let q = n.queue;
        if let Some(s) = size {
            // Re-link so the queue's byte count follows the new size.
            self.unlink(id);
            self.nodes[id as usize].size = s;
            let back = if q == Queue::Pending {
                Queue::Probation
            } else {
                q
            };
            self.push_front(id, back);
        }
        match q {
            Queue::Window => self.move_to(id, Queue::Window),
            Queue::Probation => {
                self.move_to(id, Queue::Protected);
                self.demote_protected();
            }
            Queue::Protected => self.move_to(id, Queue::Protected),
            Queue::Pending => {
                // The host kept a victim after all: readmit it.
                self.live += 1;
                if size.is_none() {
                    self.push_front(id, Queue::Probation);
                }
            }
            Queue::None | Queue::Oversize => {}
        }
        self.spill_window();
    }

    /// The entry left; its id is free again.
    pub fn on_remove(&mut self, id: u32) {
        let Some(n) = self.nodes.get(id as usize).copied() else {
            return;
        };
        match n.queue {
            Queue::None => return,
            Queue::Pending => {}
            _ => {
                self.unlink(id);
                self.live -= 1;
            }
        }
        self.nodes[id as usize].queue = Queue::None;
    }

    fn main_victim(&self) -> u32 {
        if self.probation.tail != NIL {
            self.probation.tail
        } else {
            self.protected.tail
        }
    }

    /// The next entry to evict, applying admission to the window's overflow.
    fn pick(&mut self) -> u32 {
        while self.window.bytes > self.window_cap && self.window.tail != NIL {
            let cand = self.window.tail;
            let size = self.nodes[cand as usize].size;
            if self.main_bytes() + size <= self.main_cap {
                self.move_to(cand, Queue::Probation);
                continue;
            }
            let victim = self.main_victim();
            if victim == NIL {
                return cand; // larger than main itself
            }
            let (fc, fv) = (
                self.sketch.frequency(self.key(cand)),
                self.sketch.frequency(self.key(victim)),
            );
            // libCacheSim counts the candidate once per admission attempt.
            let k = self.key(cand);
            self.sketch.increment(k);
            return if fc > fv { victim } else { cand };
        }
        match self.main_victim() {
            NIL => self.window.tail,
            v => v,
        }
    }

    /// Pushes victims onto `out`, best first, until `bytes_to_free` are freed or
    /// `max_count` ids are chosen. Victims leave their queues now (pending their remove).
    pub fn victims(&mut self, bytes_to_free: u64, max_count: u32, out: &mut Vec<u64>) {
        let mut freed = 0u64;
        let mut n = 0u32;
        while freed < bytes_to_free && n < max_count {
            // Entries larger than the window first: they are not admitted.
            let id = match self.oversize.pop() {
                Some(o) if self.nodes[o as usize].queue == Queue::Oversize => o,
                Some(_) => continue,
                None => self.pick(),
            };
            if id == NIL {
                break;
            }
            self.unlink(id);
            self.nodes[id as usize].queue = Queue::Pending;
            self.live -= 1;
            freed = freed.saturating_add(self.nodes[id as usize].size);
            out.push(u64::from(id));
            n += 1;
        }
    }
}
