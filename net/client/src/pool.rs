//! [`Pool`]: the shared core of [`crate::Client`] and [`crate::AsyncClient`]: the node's
//! topology, the router built from it, and `connections_per_shard` [`Link`]s per shard.
//!
//! Bootstrap ([`bootstrap`]): connect to any node address, ask TOPOLOGY on that plain
//! connection, and derive each shard's address from the peer's IP and `shard_ports`. Links
//! are opened eagerly, so a client that connected can reach every shard. A dead link is
//! replaced by the next call that picks it (reconnect on demand); the call that finds it
//! dead waits for the new connection, and a failed reconnect is returned as
//! `ClientError::Connect`. Calls are spread over a shard's links round-robin.
//!
//! Invariants: `shards.len() == router.shard_count()`; every slot holds a link that was open
//! when stored; `max_frame_bytes` is the smallest maximum any shard announced.

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::ClientError;
use crate::link::Link;
use crate::routing::Router;
use ringkv_proto::{ProtoError, Request, Response, Topology};
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// The node's topology and the address of each shard, as learned from any node address.
#[derive(Debug, Clone)]
pub(crate) struct Bootstrap {
    pub(crate) topology: Topology,
    pub(crate) router: Router,
    pub(crate) shard_addrs: Vec<String>,
}

/// Connects to `addr`, asks TOPOLOGY and derives the shard addresses (same host).
pub(crate) fn bootstrap<A: ToSocketAddrs + fmt::Display>(
    addr: A,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<Bootstrap, ClientError> {
    let mut conn = Connection::connect(addr, connect_timeout)?;
    let host: IpAddr = conn
        .peer_addr()
        .map_err(|source| ClientError::Io {
            addr: conn.addr().to_string(),
            source,
        })?
        .ip();
    conn.set_read_timeout(Some(request_timeout))?;
    let id = conn.send_request(&Request::Topology)?;
    conn.flush()?;
    let peer = conn.addr().to_string();
    let topology = conn.recv(|answer_id, response| match response {
        _ if answer_id != id => Err(ClientError::Protocol {
            addr: peer.clone(),
            error: ProtoError::InvalidField {
                field: "response request id",
                value: answer_id,
            },
        }),
        Response::Topology(topology) => Ok(topology),
        Response::Error { code, message } => Err(ClientError::Server {
            op: "TOPOLOGY",
            code,
            message: message.to_string(),
        }),
        _ => Err(unexpected(&peer, ringkv_proto::opcode::TOPOLOGY)),
    })??;
    let router = Router::new(&topology)?;
    let shard_addrs = topology
        .shard_ports
        .iter()
        .map(|&port| SocketAddr::new(host, port).to_string())
        .collect();
    Ok(Bootstrap {
        topology,
        router,
        shard_addrs,
    })
}

/// A response of the wrong kind for a request with `opcode` (the link's reader checks
/// opcodes, so this means a server bug).
pub(crate) fn unexpected(addr: &str, opcode: u8) -> ClientError {
    ClientError::Protocol {
        addr: addr.to_string(),
        error: ProtoError::InvalidField {
            field: "response kind for opcode",
            value: u64::from(opcode),
        },
    }
}

struct ShardLinks {
    addr: String,
    slots: Vec<Mutex<Option<Arc<Link>>>>,
    next: AtomicUsize,
}

impl ShardLinks {
    fn pick(&self) -> &Mutex<Option<Arc<Link>>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        &self.slots[i]
    }
}

fn lock(slot: &Mutex<Option<Arc<Link>>>) -> MutexGuard<'_, Option<Arc<Link>>> {
    // The guarded value is replaced whole, so a poisoned lock still holds a valid value.
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

fn alive(slot: &Option<Arc<Link>>) -> Option<Arc<Link>> {
    slot.as_ref().filter(|l| l.is_alive()).cloned()
}

/// The topology plus open links to every shard.
pub(crate) struct Pool {
    pub(crate) config: ClientConfig,
    pub(crate) topology: Topology,
    pub(crate) router: Router,
    pub(crate) max_frame_bytes: u32,
    shards: Vec<ShardLinks>,
}

impl Pool {
    pub(crate) fn connect<A: ToSocketAddrs + fmt::Display>(
        addr: A,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        let boot = bootstrap(addr, config.connect_timeout, config.request_timeout)?;
        let mut max_frame_bytes = u32::MAX;
        let mut shards = Vec::with_capacity(boot.shard_addrs.len());
        for addr in boot.shard_addrs {
            let mut slots = Vec::with_capacity(config.connections_per_shard);
            for _ in 0..config.connections_per_shard {
                let link = Link::open(&addr, &config)?;
                max_frame_bytes = max_frame_bytes.min(link.hello().max_frame_bytes);
                slots.push(Mutex::new(Some(Arc::new(link))));
            }
            shards.push(ShardLinks {
                addr,
                slots,
                next: AtomicUsize::new(0),
            });
        }
        Ok(Self {
            config,
            topology: boot.topology,
            router: boot.router,
            max_frame_bytes,
            shards,
        })
    }

    pub(crate) fn shard_addrs(&self) -> Vec<String> {
        self.shards.iter().map(|s| s.addr.clone()).collect()
    }

    /// The address of `shard` (for error messages).
    pub(crate) fn shard_addr(&self, shard: u16) -> &str {
        self.shards
            .get(usize::from(shard))
            .map_or("(no such shard)", |s| s.addr.as_str())
    }

    fn shard(&self, shard: u16) -> Result<&ShardLinks, ClientError> {
        self.shards.get(usize::from(shard)).ok_or_else(|| {
            ClientError::InvalidArgument(format!(
                "shard {shard} is not below {}",
                self.shards.len()
            ))
        })
    }

    /// A live link to `shard`, reconnecting (blocking) if the picked one died.
    pub(crate) fn link(&self, shard: u16) -> Result<Arc<Link>, ClientError> {
        let shard = self.shard(shard)?;
        let slot = shard.pick();
        let mut guard = lock(slot);
        if let Some(link) = alive(&guard) {
            return Ok(link);
        }
        let link = Arc::new(Link::open(&shard.addr, &self.config)?);
        *guard = Some(Arc::clone(&link));
        Ok(link)
    }

    /// A live link to `shard`; a reconnect runs on a helper thread so that the executor is
    /// not blocked.
    pub(crate) async fn link_async(&self, shard: u16) -> Result<Arc<Link>, ClientError> {
        let shard = self.shard(shard)?;
        let slot = shard.pick();
        if let Some(link) = alive(&lock(slot)) {
            return Ok(link);
        }
        let addr = shard.addr.clone();
        let config = self.config.clone();
        let link = off_thread(move || Link::open(&addr, &config)).await?;
        let mut guard = lock(slot);
        if let Some(existing) = alive(&guard) {
            // Another task reconnected first; ours is dropped (its threads end).
            return Ok(existing);
        }
        let link = Arc::new(link);
        *guard = Some(Arc::clone(&link));
        Ok(link)
    }
}

/// Runs blocking `work` on a new thread and awaits its result (used for connects from async
/// code, which are rare: start-up and reconnects).
pub(crate) async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    let (tx, rx) = flume::bounded(1);
    thread::Builder::new()
        .name("ringkv-connect".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|source| ClientError::Io {
            addr: "(connect thread)".into(),
            source,
        })?;
    rx.recv_async().await.map_err(|_| ClientError::Closed)?
}
