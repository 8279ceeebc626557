//! [`Client`]: the blocking, thread-safe, shard-aware client.
//!
//! A `Client` is a cheap handle (`Arc` inside; `Clone`, `Send`, `Sync`) on a [`Pool`]: the
//! node's topology and `connections_per_shard` multiplexed links per shard. Each call routes
//! its keys to the owning shard (`slot_owners[slot_of(key)]`), sends its frames (several
//! shards are asked at once for multi-key calls), then blocks the calling thread until the
//! answers arrive or the request timeout passes. Many threads may call at once; each link
//! keeps up to `max_in_flight` requests outstanding and makes further callers wait.
//!
//! Failure model: a server error is returned with its code and the operation's name; a dead
//! connection fails the requests pending on it, and the next call that picks it reconnects.
//! A BATCH that spans shards is atomic per slot only: when one shard's part fails, the parts
//! sent to other shards may have been applied.

use crate::async_client::AsyncClient;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::ingest::Ingest;
use crate::link::{Reply, ReplyResult};
use crate::ops::{self, Call, CursorScan, Entry, ScanPage, SlotScan, SlotSelector};
use crate::pool::Pool;
use crate::routing::Router;
use ringkv_proto::request::{ALL_SHARDS, ALL_SLOTS};
use ringkv_proto::{
    opcode, BatchOp, MovesView, RebalanceStatus, Request, ShardStats, SlotStat, Topology,
};
use std::fmt;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The blocking client. See the module documentation.
#[derive(Clone)]
pub struct Client {
    pub(crate) pool: Arc<Pool>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("shards", &self.pool.shard_addrs())
            .field("epoch", &self.pool.topology.epoch)
            .finish()
    }
}

impl Client {
    /// Connects to any address of a node, learns its topology and opens connections to
    /// every shard (on the same host, at the ports TOPOLOGY lists).
    pub fn connect<A: ToSocketAddrs + fmt::Display>(
        addr: A,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            pool: Arc::new(Pool::connect(addr, config)?),
        })
    }

    /// An async handle sharing this client's connections.
    pub fn to_async(&self) -> AsyncClient {
        AsyncClient {
            pool: Arc::clone(&self.pool),
        }
    }

    /// A bulk-loading handle with its own connections (one per shard), using this client's
    /// topology and its `batch_ops`, `batch_bytes` and `pipeline` settings.
    pub fn ingest(&self) -> Result<Ingest, ClientError> {
        Ingest::with_shards(
            self.pool.shard_addrs(),
            self.pool.router.clone(),
            self.pool.config.ingest(),
        )
    }

    pub fn config(&self) -> &ClientConfig {
        &self.pool.config
    }

    /// The topology learned at connect time (what routing uses).
    pub fn cached_topology(&self) -> &Topology {
        &self.pool.topology
    }

    pub fn router(&self) -> &Router {
        &self.pool.router
    }

    /// The address of each shard's port.
    pub fn shard_addrs(&self) -> Vec<String> {
        self.pool.shard_addrs()
    }

    /// Largest frame every shard accepts.
    pub fn max_frame_bytes(&self) -> u32 {
        self.pool.max_frame_bytes
    }

    /// Pings every shard; returns the time until all answered.
    pub fn ping(&self) -> Result<Duration, ClientError> {
        let began = Instant::now();
        for reply in self.run_all(self.pool.ping_calls()?)? {
            ops::expect_pong(reply)?;
        }
        Ok(began.elapsed())
    }

    /// The value of `key`, or `None` if it does not exist.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, ClientError> {
        let key = key.as_ref();
        ops::expect_value(self.run(self.pool.key_call(key, &Request::Get { key })?)?)
    }

    /// Stores `value` under `key`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let call = self.pool.key_call(key, &Request::Put { key, value })?;
        ops::expect_done(self.run(call)?, opcode::PUT)
    }

    /// Deletes `key` (deleting a missing key succeeds).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let key = key.as_ref();
        let call = self.pool.key_call(key, &Request::Delete { key })?;
        ops::expect_done(self.run(call)?, opcode::DELETE)
    }

    /// Applies puts and deletes, one BATCH frame per shard involved (all shards are asked
    /// at once). Returns the number of operations applied. Atomic per slot only; each
    /// shard's part must fit one frame.
    pub fn batch(&self, ops: &[BatchOp<'_>]) -> Result<u64, ClientError> {
        if ops.is_empty() {
            return Ok(0);
        }
        ops::expect_applied(self.run_all(self.pool.batch_calls(ops)?)?)
    }

    /// The values of `keys`, in the same order (`None` for missing keys).
    pub fn mget<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, ClientError> {
        let (calls, layout) = self.pool.mget_plan(keys)?.into_parts();
        let replies = self.run_all(calls)?;
        ops::finish_mget(&self.pool, &layout, replies)
    }

    /// Entries of one slot with keys in `[start, end)` (empty bounds: the slot's first or
    /// last key), in key order, up to `limit` entries; fetches pages of `scan_page` until
    /// the server says the range is complete.
    pub fn scan_slot<'t>(
        &self,
        slot: impl Into<SlotSelector<'t>>,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, ClientError> {
        let mut scan = SlotScan::new(&self.pool, slot.into(), start, end, limit)?;
        while let Some(call) = scan.next_call(&self.pool) {
            scan.absorb(self.run(call?)?)?;
        }
        Ok(scan.entries)
    }

    /// One page of a scan over every key of the node, resuming at `cursor` (empty: from the
    /// beginning; then pass the previous page's `next`).
    pub fn scan_page(&self, cursor: &[u8], limit: u32) -> Result<ScanPage, ClientError> {
        ops::expect_page(self.run(self.pool.cursor_call(cursor, limit)?)?)
    }

    /// Every entry of the node in (slot, key) order, up to `limit` entries.
    pub fn scan_all(&self, limit: usize) -> Result<Vec<Entry>, ClientError> {
        let mut scan = CursorScan::new(&self.pool, limit);
        while let Some(call) = scan.next_call(&self.pool) {
            scan.absorb(self.run(call?)?)?;
        }
        Ok(scan.entries)
    }

    /// Every entry of the node, fetched page by page as the iterator advances.
    pub fn scan_all_iter(&self) -> ScanAll<'_> {
        ScanAll {
            client: self,
            scan: CursorScan::new(&self.pool, usize::MAX),
            at: 0,
            failed: false,
        }
    }

    /// The node's current topology (asked now, not the cached copy).
    pub fn topology(&self) -> Result<Topology, ClientError> {
        ops::expect_topology(self.run(self.pool.topology_call()?)?)
    }

    /// Counters of every shard, as STATS returns them.
    pub fn stats(&self) -> Result<Vec<ShardStats>, ClientError> {
        ops::expect_stats(self.run(self.pool.stats_call()?)?)
    }

    /// Flushes the memtables of `shard` (`None`: every shard) to SSTables; returns when done.
    pub fn flush(&self, shard: Option<u16>) -> Result<(), ClientError> {
        let request = Request::Flush {
            shard: shard.unwrap_or(ALL_SHARDS),
        };
        ops::expect_done(self.run(self.pool.admin_call(&request)?)?, opcode::FLUSH)
    }

    /// Compacts the data of `slot` (`None`: every slot) on `shard` (`None`: every shard) down
    /// to the deepest level. With `wait`, returns once the compaction is done (allow for it
    /// in the request timeout); without, once it has started.
    pub fn compact(
        &self,
        shard: Option<u16>,
        slot: Option<u16>,
        wait: bool,
    ) -> Result<(), ClientError> {
        let request = Request::Compact {
            shard: shard.unwrap_or(ALL_SHARDS),
            slot: slot.unwrap_or(ALL_SLOTS),
            wait,
        };
        ops::expect_done(self.run(self.pool.admin_call(&request)?)?, opcode::COMPACT)
    }

    /// Writes a consistent copy of every shard and the slot map into `path`, a directory on
    /// the node's host that must not exist (absolute). Returns when the copy is complete.
    pub fn checkpoint(&self, path: &std::path::Path) -> Result<(), ClientError> {
        use std::os::unix::ffi::OsStrExt;
        let request = Request::Checkpoint {
            shard: ALL_SHARDS,
            path: path.as_os_str().as_bytes(),
        };
        ops::expect_done(
            self.run(self.pool.admin_call(&request)?)?,
            opcode::CHECKPOINT,
        )
    }

    /// Starts moving slots between the node's shards: `(slot, to_shard)` pairs, copying at
    /// most `max_bytes_per_sec` (0: unthrottled). Returns the job's status at start.
    pub fn rebalance_apply(
        &self,
        moves: &[(u16, u16)],
        max_bytes_per_sec: u64,
    ) -> Result<RebalanceStatus, ClientError> {
        let mut entries = Vec::with_capacity(moves.len() * 4);
        MovesView::encode_entries(moves, &mut entries);
        let request = Request::RebalanceApply {
            max_bytes_per_sec,
            moves: MovesView::new(&entries),
        };
        ops::expect_rebalance(self.run(self.pool.admin_call(&request)?)?)
    }

    /// The rebalance job's progress.
    pub fn rebalance_status(&self) -> Result<RebalanceStatus, ClientError> {
        ops::expect_rebalance(self.run(self.pool.admin_call(&Request::RebalanceStatus)?)?)
    }

    /// Asks the rebalance job to stop after the slot it is moving.
    pub fn rebalance_cancel(&self) -> Result<RebalanceStatus, ClientError> {
        ops::expect_rebalance(self.run(self.pool.admin_call(&Request::RebalanceCancel)?)?)
    }

    /// Per slot (index = slot): owner, approximate bytes stored, operations since start.
    pub fn slot_stats(&self) -> Result<Vec<SlotStat>, ClientError> {
        ops::expect_slot_stats(self.run(self.pool.admin_call(&Request::SlotStats)?)?)
    }

    fn run(&self, call: Call) -> ReplyResult {
        let link = self.pool.link(call.shard)?;
        let permit = link.acquire(call.opcode)?;
        let reply = link.submit(permit, call.opcode, call.frame)?;
        link.wait(&reply)
    }

    /// Sends every call first, then waits for all answers (in call order). The first
    /// failure is returned once all answers are in.
    fn run_all(&self, calls: Vec<Call>) -> Result<Vec<Reply>, ClientError> {
        let mut waiting = Vec::with_capacity(calls.len());
        let mut failure = None;
        for call in calls {
            let sent = self.pool.link(call.shard).and_then(|link| {
                let permit = link.acquire(call.opcode)?;
                link.submit(permit, call.opcode, call.frame)
            });
            match sent {
                Ok(reply) => waiting.push(reply),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut replies = Vec::with_capacity(waiting.len());
        for reply in waiting {
            match crate::link::wait(&reply, self.pool.config.request_timeout) {
                Ok(r) => replies.push(r),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(replies),
        }
    }
}

/// Iterator over every entry of the node; see [`Client::scan_all_iter`]. Yields an error
/// once and then ends if a page fails.
pub struct ScanAll<'c> {
    client: &'c Client,
    scan: CursorScan,
    at: usize,
    failed: bool,
}

impl Iterator for ScanAll<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if self.at < self.scan.entries.len() {
                let entry = std::mem::take(&mut self.scan.entries[self.at]);
                self.at += 1;
                return Some(Ok(entry));
            }
            self.scan.entries.clear();
            self.at = 0;
            if self.scan.is_done() {
                return None;
            }
            let call = self.scan.next_call(&self.client.pool)?;
            let page = call.and_then(|call| self.client.run(call));
            if let Err(e) = page.and_then(|reply| self.scan.absorb(reply)) {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Options, TestServer};
    use ringkv_proto::{slot_of, ErrorCode, KEY_BYTES_MAX};
    use std::sync::atomic::Ordering;

    fn client(server: &TestServer, config: ClientConfig) -> Client {
        Client::connect(server.base, config).unwrap()
    }

    #[test]
    fn data_ops_route_and_round_trip() {
        let server = TestServer::start(Options::default());
        let c = client(&server, ClientConfig::default());
        assert_eq!(c.router().shard_count(), 2);
        assert_eq!(c.shard_addrs().len(), 2);
        c.ping().unwrap();
        c.put("alpha", "1").unwrap();
        assert_eq!(c.get("alpha").unwrap(), Some(b"1".to_vec()));
        assert_eq!(c.get("missing").unwrap(), None);
        c.delete("alpha").unwrap();
        assert_eq!(c.get("alpha").unwrap(), None);
        let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
        let ops: Vec<BatchOp<'_>> = keys
            .iter()
            .map(|k| BatchOp::Put {
                key: k.as_bytes(),
                value: k.as_bytes(),
            })
            .collect();
        assert_eq!(c.batch(&ops).unwrap(), 300);
        assert_eq!(c.batch(&[]).unwrap(), 0);
        let mut asked: Vec<&str> = keys.iter().map(String::as_str).rev().collect();
        asked.insert(7, "nope");
        let values = c.mget(&asked).unwrap();
        assert_eq!(values.len(), asked.len());
        for (key, value) in asked.iter().zip(&values) {
            match *key {
                "nope" => assert_eq!(value, &None),
                k => assert_eq!(value.as_deref(), Some(k.as_bytes())),
            }
        }
        let all = c.scan_all(usize::MAX).unwrap();
        assert_eq!(all.len(), 300);
        let mut ordered = all.clone();
        ordered.sort_by_key(|(k, _)| (slot_of(k), k.clone()));
        assert_eq!(all, ordered, "(slot, key) order");
        assert_eq!(c.scan_all(10).unwrap(), all[..10].to_vec());
        let iterated: Vec<_> = c.scan_all_iter().map(Result::unwrap).collect();
        assert_eq!(iterated, all);
        let topology = c.topology().unwrap();
        assert_eq!(&topology, c.cached_topology());
        let stats = c.stats().unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].get("keys"), Some(300));
    }

    #[test]
    fn slot_scans_page_until_done_and_honour_the_limit() {
        let server = TestServer::start(Options::default());
        let config = ClientConfig {
            scan_page: 3,
            ..ClientConfig::default()
        };
        let c = client(&server, config);
        for i in 0..10 {
            c.put(format!("{{user42}}:{i}"), format!("v{i}")).unwrap();
        }
        c.put("other", "x").unwrap();
        let entries = c.scan_slot("user42", b"", b"", usize::MAX).unwrap();
        let keys: Vec<String> = entries
            .iter()
            .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("{{user42}}:{i}")).collect();
        assert_eq!(keys, expected);
        let by_slot = c
            .scan_slot(slot_of(b"user42"), b"{user42}:3", b"{user42}:7", usize::MAX)
            .unwrap();
        assert_eq!(by_slot.len(), 4);
        assert_eq!(by_slot[0].1, b"v3");
        assert_eq!(c.scan_slot("user42", b"", b"", 5).unwrap().len(), 5);
        assert!(c.scan_slot(4096u16, b"", b"", 5).is_err());
    }

    #[test]
    fn errors_say_what_failed() {
        let server = TestServer::start(Options::default());
        let c = client(&server, ClientConfig::default());
        let e = c.put("reject-me", "x").unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::INVALID_ARGUMENT));
        assert!(matches!(e, ClientError::Server { op: "PUT", .. }), "{e}");
        let e = c.get(vec![b'k'; KEY_BYTES_MAX + 1]).unwrap_err();
        assert!(matches!(e, ClientError::InvalidArgument(_)), "{e}");
        assert!(matches!(c.get(""), Err(ClientError::InvalidArgument(_))));
        let ops = [
            BatchOp::Put {
                key: b"reject-batch",
                value: b"1",
            },
            BatchOp::Put {
                key: b"fine",
                value: b"1",
            },
        ];
        let e = c.batch(&ops).unwrap_err();
        assert!(matches!(e, ClientError::Server { op: "BATCH", .. }), "{e}");
        // The client is still usable.
        c.put("fine", "2").unwrap();
    }

    #[test]
    fn timeouts_fail_the_request_not_the_client() {
        let server = TestServer::start(Options::default());
        let config = ClientConfig {
            request_timeout: Duration::from_millis(100),
            ..ClientConfig::default()
        };
        let c = client(&server, config);
        let e = c.put("slow-1", "x").unwrap_err();
        assert!(matches!(e, ClientError::Timeout { op: "PUT", .. }), "{e}");
        // The late answer is dropped; later calls on the same connection work.
        std::thread::sleep(Duration::from_millis(400));
        c.put("fast", "y").unwrap();
        assert_eq!(c.get("fast").unwrap(), Some(b"y".to_vec()));
    }

    #[test]
    fn a_dead_connection_fails_its_requests_and_the_next_call_reconnects() {
        let server = TestServer::start(Options::default());
        let c = client(&server, ClientConfig::default());
        let before = server.accepted.load(Ordering::SeqCst);
        let e = c.put("kill-it", "x").unwrap_err();
        assert!(matches!(e, ClientError::Io { .. }), "{e}");
        // "{kill-it}..." has the slot of "kill-it": the dead link is picked again, found
        // dead (fail_all marks it before failing the waiters) and replaced.
        c.put("{kill-it}after", "y").unwrap();
        assert_eq!(c.get("{kill-it}after").unwrap(), Some(b"y".to_vec()));
        assert!(server.accepted.load(Ordering::SeqCst) > before);
    }

    #[test]
    fn many_threads_share_a_small_window_with_out_of_order_answers() {
        let server = TestServer::start(Options {
            reverse: true,
            ..Options::default()
        });
        let config = ClientConfig {
            max_in_flight: 2,
            connections_per_shard: 2,
            ..ClientConfig::default()
        };
        let c = client(&server, config);
        std::thread::scope(|s| {
            for t in 0..8 {
                let c = c.clone();
                s.spawn(move || {
                    for i in 0..200 {
                        let key = format!("t{t}-{i}");
                        c.put(&key, key.as_bytes()).unwrap();
                        assert_eq!(c.get(&key).unwrap().as_deref(), Some(key.as_bytes()));
                    }
                });
            }
        });
        assert_eq!(c.scan_all(usize::MAX).unwrap().len(), 8 * 200);
    }

    #[test]
    fn mget_splits_frames_that_would_be_too_large() {
        let server = TestServer::start(Options {
            max_frame_bytes: 64 << 10,
            ..Options::default()
        });
        let c = client(&server, ClientConfig::default());
        assert_eq!(c.max_frame_bytes(), 64 << 10);
        let keys: Vec<Vec<u8>> = (0..400u32)
            .map(|i| {
                let mut k = format!("{i:04}").into_bytes();
                k.resize(1000, b'.');
                k
            })
            .collect();
        for k in keys.iter().step_by(3) {
            c.put(k, &k[..4]).unwrap();
        }
        let values = c.mget(&keys).unwrap();
        for (i, (k, v)) in keys.iter().zip(&values).enumerate() {
            assert_eq!(v.as_deref(), (i % 3 == 0).then_some(&k[..4]));
        }
        // One shard's BATCH part over the frame limit is refused before sending.
        let ops: Vec<BatchOp<'_>> = keys
            .iter()
            .map(|k| BatchOp::Put { key: k, value: k })
            .collect();
        assert!(matches!(
            c.batch(&ops),
            Err(ClientError::InvalidArgument(_))
        ));
    }

    #[test]
    fn client_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Client>();
        check::<crate::AsyncClient>();
    }
}
