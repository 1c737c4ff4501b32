//! Victim runs (WIT `eviction-run`): a policy whose eviction order is stable (an LRU, a
//! FIFO) answers its next victims once, and the cache evicts them from the run's front,
//! one eviction at a time, without calling the policy again. With exact capacity (one
//! eviction per insert, as in `rmhost sim`) that turns one ~210 ns component call per miss
//! into one per run.
//!
//! Exactness rests on the policy's promise (see `wit/policy.wit`) plus one rule kept here:
//! the run is dropped at the first event that touches one of its entries (a hit, an update,
//! a remove or expiry other than its eviction from the front) and when the policy's state
//! is rebuilt (replay, swap). A run's ids are therefore always live, and a consumed id is
//! exactly what `observe` would have answered at that point.

use super::core::Slot;
use std::collections::VecDeque;

/// The shortest run asked for (an eviction that likely needs more asks for more). Longer
/// runs save calls while nothing touches them, but a hit on any run entry throws the rest
/// away and the guest builds the whole answer each time. 64 is a reasoned default, not a
/// tuned one: other lengths were not measured.
pub(crate) const RUN_MAX: u32 = 64;

/// The current run: ids in eviction order, each marked `in_run` in its slot.
#[derive(Debug, Default)]
pub(crate) struct VictimRun {
    ids: VecDeque<u32>,
}

impl VictimRun {
    /// Appends `id` if it is live and not already in the run; false otherwise.
    pub fn push(&mut self, slots: &mut [Slot], id: u32) -> bool {
        match slots.get_mut(id as usize) {
            Some(s) if s.live && !s.in_run => {
                s.in_run = true;
                self.ids.push_back(id);
                true
            }
            _ => false,
        }
    }

    /// The next victim, unmarked (the caller frees it).
    pub fn pop(&mut self, slots: &mut [Slot]) -> Option<u32> {
        let id = self.ids.pop_front()?;
        slots[id as usize].in_run = false;
        Some(id)
    }

    /// Forgets the run (an event touched one of its entries, or the policy's state changed).
    pub fn clear(&mut self, slots: &mut [Slot]) {
        for id in self.ids.drain(..) {
            if let Some(s) = slots.get_mut(id as usize) {
                s.in_run = false;
            }
        }
    }
}
