//! The dense-id allocator: hands out the smallest free id (the contract's rule), in O(1)
//! amortised time, from a two-level bitmap (bit set = free) instead of a min-heap: taking
//! and freeing an id touch one word and one summary word, with no sifting.

/// Free ids below `len`, smallest first.
#[derive(Debug, Default, Clone)]
pub(crate) struct FreeIds {
    /// Bit `i % 64` of word `i / 64` is set when id `i` is free.
    words: Vec<u64>,
    /// Bit `w % 64` of summary word `w / 64` is set when `words[w]` has a free id.
    summary: Vec<u64>,
    /// No summary word below this index has a bit set.
    low: usize,
}

impl FreeIds {
    /// Marks `id` free.
    pub fn push(&mut self, id: u32) {
        let (w, b) = (id as usize / 64, id % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
            self.summary.resize(w / 64 + 1, 0);
        }
        debug_assert_eq!(self.words[w] & (1 << b), 0, "id {id} freed twice");
        self.words[w] |= 1 << b;
        self.summary[w / 64] |= 1 << (w % 64);
        self.low = self.low.min(w / 64);
    }

    /// Takes the smallest free id, if any.
    pub fn pop(&mut self) -> Option<u32> {
        while self.low < self.summary.len() {
            let s = self.summary[self.low];
            if s == 0 {
                self.low += 1;
                continue;
            }
            let w = self.low * 64 + s.trailing_zeros() as usize;
            let word = self.words[w];
            let id = w * 64 + word.trailing_zeros() as usize;
            let rest = word & (word - 1);
            self.words[w] = rest;
            if rest == 0 {
                self.summary[self.low] &= !(1 << (w % 64));
            }
            return Some(id as u32);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::FreeIds;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    #[test]
    fn always_the_smallest_free_id() {
        let mut f = FreeIds::default();
        let mut heap = BinaryHeap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut taken: Vec<u32> = (0..10_000).collect();
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) && !taken.is_empty() {
                let id = taken.swap_remove((x >> 8) as usize % taken.len());
                f.push(id);
                heap.push(Reverse(id));
            } else {
                let got = f.pop();
                assert_eq!(got, heap.pop().map(|Reverse(i)| i));
                if let Some(id) = got {
                    taken.push(id);
                }
            }
        }
    }
}
