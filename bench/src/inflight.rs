//! The frames in flight on one connection, by request id.
//!
//! A connection hands out request ids in increasing order and answers come back mostly in
//! order (always, over RESP; forwarded native requests may overtake one another), so the
//! frames sit in a window of slots indexed from the oldest id still waiting: insert and
//! remove are an index, with no hashing, and answered slots at the front are dropped as the
//! oldest is answered. The window spans at most [`SPAN_MAX`] ids; an id further ahead of
//! the oldest unanswered one is an error, not a reason to grow without bound.

use anyhow::{bail, Result};
use std::collections::VecDeque;

/// Most ids between the oldest unanswered frame and the newest.
pub const SPAN_MAX: u64 = 1 << 20;

/// See the module documentation.
pub struct InFlight<V> {
    /// Id of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<V>>,
    len: usize,
}

impl<V> Default for InFlight<V> {
    fn default() -> Self {
        InFlight {
            base: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<V> InFlight<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records frame `id`, which must be newer than every frame still in flight.
    pub fn insert(&mut self, id: u64, value: V) -> Result<()> {
        if self.slots.is_empty() {
            self.base = id;
        }
        let Some(at) = id.checked_sub(self.base) else {
            bail!(
                "request id {id} is older than request {} still in flight",
                self.base
            );
        };
        if at >= SPAN_MAX {
            bail!(
                "request id {id} is more than {SPAN_MAX} ids past request {} still in flight",
                self.base
            );
        }
        let at = at as usize;
        if at < self.slots.len() {
            bail!("request id {id} is already in flight or was answered out of turn");
        }
        self.slots.resize_with(at, || None);
        self.slots.push_back(Some(value));
        self.len += 1;
        Ok(())
    }

    /// Takes frame `id` out, if it is in flight.
    pub fn remove(&mut self, id: u64) -> Option<V> {
        let at = usize::try_from(id.checked_sub(self.base)?).ok()?;
        let value = self.slots.get_mut(at)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order_answers() {
        let mut f = InFlight::default();
        for id in 10..20 {
            f.insert(id, id * 2).unwrap();
        }
        assert_eq!(f.len(), 10);
        assert_eq!(f.remove(10), Some(20));
        // Out of order: 15 before 11..14; the window keeps its front until 11 is answered.
        assert_eq!(f.remove(15), Some(30));
        assert_eq!(f.remove(15), None, "answered twice");
        assert_eq!(f.remove(9), None, "never sent");
        assert_eq!(f.remove(99), None, "never sent");
        for id in [12, 11, 13, 14] {
            assert_eq!(f.remove(id), Some(id * 2));
        }
        assert_eq!(f.len(), 4);
        // Ids may skip (ids used by requests not tracked here).
        f.insert(25, 50).unwrap();
        assert!(f.insert(24, 0).is_err(), "older than the newest");
        assert!(f.insert(16, 0).is_err(), "already in flight");
        for id in [16, 17, 18, 19, 25] {
            assert!(f.remove(id).is_some());
        }
        assert!(f.is_empty());
        // Empty: the next id starts a new window anywhere.
        f.insert(7, 1).unwrap();
        assert_eq!(f.remove(7), Some(1));
    }

    #[test]
    fn a_window_never_spans_more_than_the_bound() {
        let mut f = InFlight::default();
        f.insert(1, ()).unwrap();
        assert!(f.insert(1 + SPAN_MAX, ()).is_err());
        f.insert(SPAN_MAX, ()).unwrap();
        assert_eq!(f.remove(1), Some(()));
        assert_eq!(f.len(), 1);
    }
}
