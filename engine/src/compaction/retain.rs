//! Which versions of a key survive a compaction (pure).
//!
//! Versions of one user key arrive newest first. Live snapshots cut the sequence-number line
//! into stripes (a stripe ends at each snapshot); a reader at snapshot s sees the newest
//! version with seq <= s, so each stripe needs only its newest version. Versions newer than
//! every snapshot and than `visible_seq` at the start of the job are all kept (they may not
//! be acknowledged yet). A tombstone is dropped only at the bottommost level and only when no
//! snapshot is older than it (then nothing older can surface).

use crate::key::{SeqNo, ValueKind};

/// Decides, entry by entry, what a compaction keeps.
pub struct Retainer {
    /// Live snapshot sequence numbers, ascending, including the visible seq at job start.
    snapshots: Vec<SeqNo>,
    visible_seq: SeqNo,
    bottommost: bool,
    current_key: Vec<u8>,
    has_key: bool,
    last_stripe: Option<usize>,
}

impl Retainer {
    /// A retainer for one job.
    pub fn new(mut snapshots: Vec<SeqNo>, visible_seq: SeqNo, bottommost: bool) -> Self {
        snapshots.push(visible_seq);
        snapshots.sort_unstable();
        snapshots.dedup();
        Retainer {
            snapshots,
            visible_seq,
            bottommost,
            current_key: Vec::new(),
            has_key: false,
            last_stripe: None,
        }
    }

    fn stripe_of(&self, seq: SeqNo) -> usize {
        self.snapshots.partition_point(|&s| s < seq)
    }

    /// True if the entry (given in internal-key order) goes into the output.
    pub fn keep(&mut self, user_key: &[u8], seq: SeqNo, kind: ValueKind) -> bool {
        if !self.has_key || self.current_key != user_key {
            self.current_key.clear();
            self.current_key.extend_from_slice(user_key);
            self.has_key = true;
            self.last_stripe = None;
        }
        if seq > self.visible_seq {
            return true;
        }
        let stripe = self.stripe_of(seq);
        if self.last_stripe == Some(stripe) {
            return false;
        }
        self.last_stripe = Some(stripe);
        !(kind == ValueKind::Delete && self.bottommost && stripe == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueKind::*;

    #[test]
    fn keeps_only_newest_without_snapshots() {
        let mut r = Retainer::new(vec![], 100, false);
        assert!(r.keep(b"a", 9, Put));
        assert!(!r.keep(b"a", 5, Put));
        assert!(!r.keep(b"a", 1, Delete));
        assert!(r.keep(b"b", 3, Delete));
    }

    #[test]
    fn snapshots_keep_one_version_per_stripe() {
        let mut r = Retainer::new(vec![4, 7], 100, true);
        assert!(r.keep(b"a", 9, Put));
        assert!(!r.keep(b"a", 8, Put));
        assert!(r.keep(b"a", 6, Put)); // newest <= 7
        assert!(!r.keep(b"a", 5, Put));
        assert!(r.keep(b"a", 3, Put)); // newest <= 4
    }

    #[test]
    fn tombstones_drop_only_at_bottom_with_no_older_snapshot() {
        let mut r = Retainer::new(vec![], 100, true);
        assert!(!r.keep(b"a", 9, Delete));
        let mut r = Retainer::new(vec![], 100, false);
        assert!(r.keep(b"a", 9, Delete));
        let mut r = Retainer::new(vec![5], 100, true);
        assert!(r.keep(b"a", 9, Delete));
        assert!(r.keep(b"a", 3, Put));
    }

    #[test]
    fn unacknowledged_versions_are_all_kept() {
        let mut r = Retainer::new(vec![], 10, true);
        assert!(r.keep(b"a", 12, Put));
        assert!(r.keep(b"a", 11, Put));
        assert!(r.keep(b"a", 9, Put));
        assert!(!r.keep(b"a", 8, Put));
    }
}
