//! [`AsyncClient`]: the same operations as [`crate::Client`], as `async fn`s that work under
//! any executor (tokio, glommio, async-std, `futures_lite::future::block_on`).
//!
//! It shares the blocking client's [`Pool`] (links with their own reader and writer threads)
//! and waits on flume channels with `recv_async`, which needs no runtime: the link's reader
//! thread wakes the task. Nothing here blocks the executor thread except for pure CPU work
//! (encoding, reassembly); connects and reconnects run on a helper thread. Request deadlines
//! are enforced by the link's reader, so no timer from the runtime is needed either.
//!
//! Cheap to clone (`Arc` inside). Dropping a future after its request was sent does not
//! cancel the request: the answer is discarded when it arrives.

use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::link::{wait_async, Reply, ReplyResult};
use crate::ops::{self, Call, CursorScan, Entry, ScanPage, SlotScan, SlotSelector};
use crate::pool::{off_thread, Pool};
use crate::routing::Router;
use ringkv_proto::{opcode, BatchOp, Request, ShardStats, Topology};
use std::fmt;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The async client. See the module documentation.
#[derive(Clone)]
pub struct AsyncClient {
    pub(crate) pool: Arc<Pool>,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("shards", &self.pool.shard_addrs())
            .field("epoch", &self.pool.topology.epoch)
            .finish()
    }
}

impl AsyncClient {
    /// Connects like [`Client::connect`]; the blocking connect runs on a helper thread.
    pub async fn connect<A>(addr: A, config: ClientConfig) -> Result<Self, ClientError>
    where
        A: ToSocketAddrs + fmt::Display + Send + 'static,
    {
        let pool = off_thread(move || Pool::connect(addr, config)).await?;
        Ok(Self {
            pool: Arc::new(pool),
        })
    }

    /// A blocking handle sharing this client's connections.
    pub fn to_blocking(&self) -> Client {
        Client {
            pool: Arc::clone(&self.pool),
        }
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

    /// Pings every shard; returns the time until all answered.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let began = Instant::now();
        for reply in self.run_all(self.pool.ping_calls()?).await? {
            ops::expect_pong(reply)?;
        }
        Ok(began.elapsed())
    }

    /// The value of `key`, or `None` if it does not exist.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, ClientError> {
        let key = key.as_ref();
        let call = self.pool.key_call(key, &Request::Get { key })?;
        ops::expect_value(self.run(call).await?)
    }

    /// Stores `value` under `key`.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let call = self.pool.key_call(key, &Request::Put { key, value })?;
        ops::expect_done(self.run(call).await?, opcode::PUT)
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let key = key.as_ref();
        let call = self.pool.key_call(key, &Request::Delete { key })?;
        ops::expect_done(self.run(call).await?, opcode::DELETE)
    }

    /// Like [`Client::batch`].
    pub async fn batch(&self, ops: &[BatchOp<'_>]) -> Result<u64, ClientError> {
        if ops.is_empty() {
            return Ok(0);
        }
        let calls = self.pool.batch_calls(ops)?;
        ops::expect_applied(self.run_all(calls).await?)
    }

    /// Like [`Client::mget`].
    pub async fn mget<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, ClientError> {
        let (calls, layout) = self.pool.mget_plan(keys)?.into_parts();
        let replies = self.run_all(calls).await?;
        ops::finish_mget(&self.pool, &layout, replies)
    }

    /// Like [`Client::scan_slot`].
    pub async fn scan_slot<'t>(
        &self,
        slot: impl Into<SlotSelector<'t>>,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, ClientError> {
        let mut scan = SlotScan::new(&self.pool, slot.into(), start, end, limit)?;
        while let Some(call) = scan.next_call(&self.pool) {
            scan.absorb(self.run(call?).await?)?;
        }
        Ok(scan.entries)
    }

    /// Like [`Client::scan_page`].
    pub async fn scan_page(&self, cursor: &[u8], limit: u32) -> Result<ScanPage, ClientError> {
        ops::expect_page(self.run(self.pool.cursor_call(cursor, limit)?).await?)
    }

    /// Like [`Client::scan_all`].
    pub async fn scan_all(&self, limit: usize) -> Result<Vec<Entry>, ClientError> {
        let mut scan = CursorScan::new(&self.pool, limit);
        while let Some(call) = scan.next_call(&self.pool) {
            scan.absorb(self.run(call?).await?)?;
        }
        Ok(scan.entries)
    }

    /// The node's current topology.
    pub async fn topology(&self) -> Result<Topology, ClientError> {
        ops::expect_topology(self.run(self.pool.topology_call()?).await?)
    }

    /// Counters of every shard.
    pub async fn stats(&self) -> Result<Vec<ShardStats>, ClientError> {
        ops::expect_stats(self.run(self.pool.stats_call()?).await?)
    }

    async fn send(&self, call: Call) -> Result<flume::Receiver<ReplyResult>, ClientError> {
        let link = self.pool.link_async(call.shard).await?;
        let permit = link.acquire_async().await?;
        link.submit(permit, call.opcode, call.frame)
    }

    async fn run(&self, call: Call) -> ReplyResult {
        wait_async(self.send(call).await?).await
    }

    /// Sends every call, then awaits every answer; returns the first failure, if any, once
    /// all answers are in.
    async fn run_all(&self, calls: Vec<Call>) -> Result<Vec<Reply>, ClientError> {
        let mut waiting = Vec::with_capacity(calls.len());
        let mut failure = None;
        for call in calls {
            match self.send(call).await {
                Ok(reply) => waiting.push(reply),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut replies = Vec::with_capacity(waiting.len());
        for reply in waiting {
            match wait_async(reply).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Options, TestServer};
    use futures_lite::future::{block_on, zip};
    use ringkv_proto::ErrorCode;

    #[test]
    fn async_ops_under_a_minimal_executor() {
        let server = TestServer::start(Options {
            reverse: true,
            ..Options::default()
        });
        block_on(async {
            let c = AsyncClient::connect(server.base, ClientConfig::default())
                .await
                .unwrap();
            c.ping().await.unwrap();
            let (a, b) = zip(c.put("a", "1"), c.put("b", "2")).await;
            a.unwrap();
            b.unwrap();
            assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
            let ops = [
                BatchOp::Put {
                    key: b"{t}1",
                    value: b"x",
                },
                BatchOp::Put {
                    key: b"{t}2",
                    value: b"y",
                },
                BatchOp::Delete { key: b"a" },
            ];
            assert_eq!(c.batch(&ops).await.unwrap(), 3);
            assert_eq!(
                c.mget(&["a", "b", "{t}2"]).await.unwrap(),
                vec![None, Some(b"2".to_vec()), Some(b"y".to_vec())]
            );
            let slot = c.scan_slot("t", b"", b"", usize::MAX).await.unwrap();
            assert_eq!(slot.len(), 2);
            assert_eq!(c.scan_all(usize::MAX).await.unwrap().len(), 3);
            let page = c.scan_page(b"", 2).await.unwrap();
            assert_eq!(page.entries.len(), 2);
            assert!(!page.next.is_empty());
            let e = c.put("reject", "x").await.unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::INVALID_ARGUMENT));
            c.delete("b").await.unwrap();
            assert_eq!(c.topology().await.unwrap().shard_ports.len(), 2);
            assert_eq!(c.stats().await.unwrap().len(), 2);
            // The blocking handle shares the connections.
            assert_eq!(c.to_blocking().get("{t}1").unwrap(), Some(b"x".to_vec()));
        });
    }

    #[test]
    fn async_reconnects_after_a_dead_connection() {
        let server = TestServer::start(Options::default());
        let c = block_on(AsyncClient::connect(
            server.base.to_string(),
            ClientConfig::default(),
        ))
        .unwrap();
        block_on(async {
            assert!(matches!(
                c.put("kill", "x").await,
                Err(ClientError::Io { .. })
            ));
            c.put("{kill}ok", "y").await.unwrap();
            assert_eq!(c.get("{kill}ok").await.unwrap(), Some(b"y".to_vec()));
        });
    }
}
