//! One shard: its database, its view of the slot map, its links to the other shards and its
//! counters. A `Shard` lives on one glommio executor and is shared by that executor's tasks
//! through `Rc`; nothing in it is touched from another thread (cross-shard traffic goes
//! through [`forward`]'s bounded channels).
//!
//! - [`exec`] runs request frames against this shard's database.
//! - [`forward`] sends frames for keys of other shards to their owners and serves frames
//!   that other shards send here.

pub mod admin;
pub mod exec;
pub mod forward;
pub mod reads;
pub mod rebalance;
pub mod slots;

use crate::config::Config;
use crate::metrics::LatencyHistogram;
use crate::slotmap::SlotMap;
use ringkv_engine::db::{Db, WriteBatch};
use ringkv_engine::io::DmaFs;
use ringkv_engine::notify::Notify;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Instant;

/// Counters of one shard, read by STATS.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: Cell<u64>,
    pub reads: Cell<u64>,
    pub writes: Cell<u64>,
    pub errors: Cell<u64>,
    pub forwarded_out_frames: Cell<u64>,
    pub forwarded_out_messages: Cell<u64>,
    pub forwarded_in_messages: Cell<u64>,
    pub connections_accepted: Cell<u64>,
    pub connections_open: Cell<u64>,
    pub connections_rejected: Cell<u64>,
    pub bytes_in: Cell<u64>,
    pub bytes_out: Cell<u64>,
    /// COMPACT jobs started.
    pub manual_compactions: Cell<u64>,
    /// From a socket read of requests to their answers being ready: waves with reads.
    pub latency_read: LatencyHistogram,
    /// The same for waves with writes (durable when the answers are ready).
    pub latency_write: LatencyHistogram,
}

/// Admin jobs of a shard that are running now (shared with the jobs' tasks).
#[derive(Default, Debug)]
pub struct AdminJobs {
    pub compactions: Cell<u64>,
}

/// Adds `n` to a counter.
pub fn bump(counter: &Cell<u64>, n: u64) {
    counter.set(counter.get().wrapping_add(n));
}

/// Shutdown state of a shard: set once, observed by accept loops and connections.
#[derive(Default)]
pub struct Shutdown {
    pub requested: Cell<bool>,
    pub notify: Notify,
}

impl Shutdown {
    pub fn request(&self) {
        self.requested.set(true);
        self.notify.notify_all();
    }

    /// Resolves once shutdown has been requested.
    pub async fn wait(&self) {
        while !self.requested.get() {
            self.notify.wait().await;
        }
    }
}

pub struct Shard {
    pub id: u16,
    pub db: Db<DmaFs>,
    map: RefCell<Rc<SlotMap>>,
    pub shard_ports: Vec<u16>,
    pub config: Arc<Config>,
    pub counters: Counters,
    pub peers: forward::Peers,
    /// Open client connections of the whole node (bounded by `max_connections`).
    pub node_connections: Arc<AtomicU32>,
    pub shutdown: Shutdown,
    /// Connections of this shard still open; shutdown waits for it to reach zero.
    pub open_connections: Cell<usize>,
    pub connections_changed: Notify,
    batch_pool: RefCell<Vec<WriteBatch>>,
    /// GET queues of waves being executed, for reuse.
    reads_pool: RefCell<Vec<reads::ReadGroup>>,
    pub started: Instant,
    pub admin_jobs: Rc<AdminJobs>,
    /// Slot states during moves, and admission epochs.
    pub slots: slots::Slots,
    /// Operations on each slot's keys executed here (for rebalance plans).
    pub slot_ops: Vec<Cell<u64>>,
    /// The node-wide slot map and rebalance job.
    pub node: Arc<rebalance::NodeShared>,
    /// Moves this shard is running as the source.
    pub moving_out: Cell<u32>,
}

/// Most write batches kept for reuse.
const BATCH_POOL_MAX: usize = 16;

/// A GET queue holding more buffer than this (after a large MGET) is dropped, not pooled.
const READS_KEEP_BYTES: usize = 256 << 10;

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u16,
        db: Db<DmaFs>,
        map: SlotMap,
        shard_ports: Vec<u16>,
        config: Arc<Config>,
        peers: forward::Peers,
        node_connections: Arc<AtomicU32>,
        node: Arc<rebalance::NodeShared>,
    ) -> Self {
        Self {
            id,
            db,
            map: RefCell::new(Rc::new(map)),
            shard_ports,
            config,
            counters: Counters::default(),
            peers,
            node_connections,
            shutdown: Shutdown::default(),
            open_connections: Cell::new(0),
            connections_changed: Notify::default(),
            batch_pool: RefCell::new(Vec::new()),
            reads_pool: RefCell::new(Vec::new()),
            started: Instant::now(),
            admin_jobs: Rc::default(),
            slots: slots::Slots::default(),
            slot_ops: (0..ringkv_proto::SLOT_COUNT)
                .map(|_| Cell::new(0))
                .collect(),
            node,
            moving_out: Cell::new(0),
        }
    }

    /// The slot map as this shard knows it.
    pub fn map(&self) -> Rc<SlotMap> {
        self.map.borrow().clone()
    }

    /// Gives `slot` to `owner` in this shard's map, at `epoch` (if newer).
    pub fn set_owner(&self, slot: u16, owner: u16, epoch: u64) {
        let mut map = (*self.map()).clone();
        map.owners[usize::from(slot)] = owner;
        map.epoch = map.epoch.max(epoch);
        *self.map.borrow_mut() = Rc::new(map);
    }

    /// Whether frames sent here under an older map may name slots this shard gave away.
    pub fn moved_away(&self) -> bool {
        self.moving_out.get() > 0
    }

    /// The shard that owns `slot`, without taking a reference to the map.
    pub fn owner_of(&self, slot: u16) -> u16 {
        self.map.borrow().owner(slot)
    }

    pub fn take_batch(&self) -> WriteBatch {
        self.batch_pool.borrow_mut().pop().unwrap_or_default()
    }

    pub fn take_reads(&self) -> reads::ReadGroup {
        self.reads_pool.borrow_mut().pop().unwrap_or_default()
    }

    pub fn return_reads(&self, mut group: reads::ReadGroup) {
        group.clear();
        let mut pool = self.reads_pool.borrow_mut();
        if pool.len() < BATCH_POOL_MAX && group.capacity_bytes() <= READS_KEEP_BYTES {
            pool.push(group);
        }
    }

    pub fn return_batch(&self, mut batch: WriteBatch) {
        batch.clear();
        let mut pool = self.batch_pool.borrow_mut();
        if pool.len() < BATCH_POOL_MAX {
            pool.push(batch);
        }
    }
}

/// A shard shared by the tasks of its executor.
pub type ShardRef = Rc<Shard>;
