//! A bounded set of recently seen keys that forgets the oldest first (Events API retry and
//! webhook delivery dedupe). First in, first out: a key seen again is not refreshed.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct FifoSet {
    cap: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl FifoSet {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Insert; `false` if it was already there.
    pub fn insert(&mut self, key: &str) -> bool {
        if self.set.contains(key) {
            return false;
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(key.to_string());
        self.set.insert(key.to_string());
        true
    }
}
