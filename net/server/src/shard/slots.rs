//! Per-slot state of a shard during slot moves, and the admission epochs a move waits on.
//!
//! A slot moving from shard A to shard B goes through (see [`super::rebalance`]):
//! - on A, [`SlotState::Frozen`] while its data is copied: waves that would write to it wait
//!   (reads go on, the data is still A's);
//! - on A, [`SlotState::Switching`] for the instant of the switch: reads wait too, until
//!   what runs here has finished;
//! - on B, [`SlotState::Incoming`] from the switch until A says every write it had routed
//!   to the slot has reached B: writes from anyone but A wait, so that a connection's
//!   earlier write (still travelling through A) cannot land after its later one.
//!
//! Admission: every wave (and every forwarded message) enters the current epoch before it
//! routes or executes, and leaves once its writes are applied or handed to their owners. A
//! move freezes the slot, flips the epoch and waits for the previous epoch to empty: after
//! that, no write admitted before the freeze is still unapplied.

use ringkv_engine::notify::Notify;
use ringkv_proto::SLOT_COUNT;
use std::cell::{Cell, RefCell};

/// What a shard does with writes of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    Normal,
    /// Being copied away: writes wait.
    Frozen,
    /// Changing owner on the old owner: reads wait too, for the moment it takes requests
    /// already running here to finish.
    Switching,
    /// Just taken over from shard `from`: writes from others wait for the hand-off.
    Incoming {
        from: u16,
    },
}

/// The per-slot states and the admission epochs of one shard.
pub struct Slots {
    states: RefCell<Vec<SlotState>>,
    /// Slots not in `Normal` state; zero on the fast path.
    special: Cell<u32>,
    /// Notified whenever a state changes back.
    pub changed: Notify,
    epoch: Cell<usize>,
    active: [Cell<u64>; 2],
    drained: Notify,
    /// Waves and messages waiting because their writes are held.
    waiting: Cell<u64>,
    released: Notify,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            states: RefCell::new(vec![SlotState::Normal; usize::from(SLOT_COUNT)]),
            special: Cell::new(0),
            changed: Notify::default(),
            epoch: Cell::new(0),
            active: [Cell::new(0), Cell::new(0)],
            drained: Notify::default(),
            waiting: Cell::new(0),
            released: Notify::default(),
        }
    }
}

/// A wave's or message's place in an admission epoch; leave with [`Slots::leave`].
#[must_use]
pub struct Admitted(usize);

impl Slots {
    /// True if no slot is in a special state (nothing can be held).
    pub fn all_normal(&self) -> bool {
        self.special.get() == 0
    }

    pub fn state(&self, slot: u16) -> SlotState {
        self.states.borrow()[usize::from(slot)]
    }

    pub fn set(&self, slot: u16, state: SlotState) {
        let mut states = self.states.borrow_mut();
        let old = std::mem::replace(&mut states[usize::from(slot)], state);
        match (old == SlotState::Normal, state == SlotState::Normal) {
            (true, false) => self.special.set(self.special.get() + 1),
            (false, true) => self.special.set(self.special.get() - 1),
            _ => {}
        }
        drop(states);
        self.changed.notify_all();
    }

    /// Whether a request on `slot` (a write if `write`) arriving from `origin` (another
    /// shard, or `None` for a client connection of this shard) must wait.
    pub fn holds(&self, slot: u16, origin: Option<u16>, write: bool) -> bool {
        if self.all_normal() {
            return false;
        }
        match self.state(slot) {
            SlotState::Normal => false,
            SlotState::Frozen => write,
            SlotState::Switching => true,
            SlotState::Incoming { from } => write && origin != Some(from),
        }
    }

    /// Waits for the next change of slot states (a held wave then routes again).
    pub async fn wait_released(&self) {
        self.waiting.set(self.waiting.get() + 1);
        self.changed.wait().await;
        self.waiting.set(self.waiting.get() - 1);
        self.released.notify_all();
    }

    /// Waits until no wave or message waits in [`wait_released`](Self::wait_released).
    /// Those that woke have entered an admission epoch by then: they route and enter
    /// without awaiting in between.
    pub async fn wait_no_waiters(&self) {
        while self.waiting.get() > 0 {
            self.released.wait().await;
        }
    }

    pub fn enter(&self) -> Admitted {
        let e = self.epoch.get();
        self.active[e].set(self.active[e].get() + 1);
        Admitted(e)
    }

    pub fn leave(&self, admitted: Admitted) {
        let c = &self.active[admitted.0];
        c.set(c.get() - 1);
        if c.get() == 0 {
            self.drained.notify_all();
        }
    }

    /// Starts a new epoch and waits until everything admitted in the previous one has left.
    pub async fn drain_admitted(&self) {
        let old = self.epoch.get();
        self.epoch.set(old ^ 1);
        while self.active[old].get() > 0 {
            self.drained.wait().await;
        }
    }
}
