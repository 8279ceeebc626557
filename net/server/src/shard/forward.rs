//! Cross-shard forwarding: a connection on shard A that receives frames for keys of shard B
//! sends them to B in one message per wave, and B answers with the response frames.
//!
//! Channels: for every ordered pair of shards (A, B) there is one bounded request channel
//! A -> B and one bounded reply channel B -> A (glommio shared channels, which wake the peer
//! executor through its eventfd). Messages carry whole buffers of frames, never single
//! operations.
//!
//! Ordering: B serves A's request channel in order and applies each message's writes before
//! it reads the next message, so writes from one connection stay in the order they were sent.
//!
//! Backpressure: a full request channel makes A's connection wait before it reads more from
//! its socket; B serves at most [`IN_FLIGHT_PER_PEER`] messages from one peer at a time (the
//! rest wait in the channel). Replies never wait on anything but the reply channel, which A
//! always drains, so the two cannot deadlock.

use super::exec;
use super::{bump, ShardRef};
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::Semaphore;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Messages queued per direction between two shards.
pub const CHANNEL_DEPTH: usize = 64;
/// Messages from one peer that a shard works on at once.
pub const IN_FLIGHT_PER_PEER: u64 = 32;

/// Frames for the destination shard to execute, or a slot-move step.
pub struct ForwardRequest {
    pub token: u64,
    pub frames: Vec<u8>,
    /// Set for slot-move messages (then `frames` is empty); see [`super::rebalance`].
    pub control: Option<super::rebalance::Control>,
}

/// The response frames, in request order.
pub struct ForwardReply {
    pub token: u64,
    pub responses: Vec<u8>,
}

/// One shard's ends of every channel, before its executor has started (`Send`).
pub struct PeerChannels {
    shard: u16,
    request_senders: Vec<Option<SharedSender<ForwardRequest>>>,
    request_receivers: Vec<Option<SharedReceiver<ForwardRequest>>>,
    reply_senders: Vec<Option<SharedSender<ForwardReply>>>,
    reply_receivers: Vec<Option<SharedReceiver<ForwardReply>>>,
}

/// Builds the channels of `shards` shards; element i belongs to shard i.
pub fn build(shards: u16) -> Vec<PeerChannels> {
    let n = usize::from(shards);
    let mut all: Vec<PeerChannels> = (0..shards)
        .map(|shard| PeerChannels {
            shard,
            request_senders: (0..n).map(|_| None).collect(),
            request_receivers: (0..n).map(|_| None).collect(),
            reply_senders: (0..n).map(|_| None).collect(),
            reply_receivers: (0..n).map(|_| None).collect(),
        })
        .collect();
    for a in 0..n {
        for b in 0..n {
            if a == b {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_DEPTH);
            all[a].request_senders[b] = Some(tx);
            all[b].request_receivers[a] = Some(rx);
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_DEPTH);
            all[b].reply_senders[a] = Some(tx);
            all[a].reply_receivers[b] = Some(rx);
        }
    }
    all
}

/// Who waits for the reply to a forwarded message: the destination shard and a one-shot
/// channel for the response frames.
type Waiter = (u16, flume::Sender<Vec<u8>>);

/// The response frames of a forwarded message, once they arrive.
pub type ReplyReceiver = flume::Receiver<Vec<u8>>;

/// This shard's connected senders and the replies it waits for.
pub struct Peers {
    shard: u16,
    request_senders: Vec<Option<ConnectedSender<ForwardRequest>>>,
    reply_senders: Vec<Option<ConnectedSender<ForwardReply>>>,
    pending: RefCell<HashMap<u64, Waiter>>,
    next_token: Cell<u64>,
}

/// This shard's connected receivers, handed to [`spawn_loops`].
pub struct Receivers {
    requests: Vec<Option<ConnectedReceiver<ForwardRequest>>>,
    replies: Vec<Option<ConnectedReceiver<ForwardReply>>>,
}

/// Why a forwarded message got no answer.
#[derive(Debug)]
pub struct PeerGone(pub u16);

impl Peers {
    /// Connects this shard's channel ends; must run on the shard's executor. Each end waits
    /// for its peer to connect, so every end is connected in its own task at once (connecting
    /// them one by one would deadlock two shards that wait on each other).
    pub async fn connect(channels: PeerChannels) -> (Peers, Receivers) {
        let request_senders = start_all(channels.request_senders, |s| s.connect());
        let reply_senders = start_all(channels.reply_senders, |s| s.connect());
        let requests = start_all(channels.request_receivers, |r| r.connect());
        let replies = start_all(channels.reply_receivers, |r| r.connect());
        let request_senders = finish_all(request_senders).await;
        let reply_senders = finish_all(reply_senders).await;
        let requests = finish_all(requests).await;
        let replies = finish_all(replies).await;
        let peers = Peers {
            shard: channels.shard,
            request_senders,
            reply_senders,
            pending: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
        };
        (peers, Receivers { requests, replies })
    }

    /// Sends `frames` to shard `dest`; the receiver yields its response frames. Waits while
    /// `dest`'s channel is full.
    pub async fn call(
        &self,
        dest: u16,
        frames: Vec<u8>,
    ) -> Result<flume::Receiver<Vec<u8>>, PeerGone> {
        self.enqueue(dest, frames, None).await
    }

    /// Sends a slot-move step to shard `dest` and waits for its answer: `Ok` or the reason
    /// it failed.
    pub async fn control(
        &self,
        dest: u16,
        control: super::rebalance::Control,
    ) -> Result<(), String> {
        let rx = self
            .enqueue(dest, Vec::new(), Some(control))
            .await
            .map_err(|_| format!("shard {dest} is gone"))?;
        match rx.recv_async().await {
            Ok(answer) if answer.is_empty() => Ok(()),
            Ok(answer) => Err(String::from_utf8_lossy(&answer).into_owned()),
            Err(_) => Err(format!("shard {dest} did not answer")),
        }
    }

    /// Registers a pending answer under a fresh token and sends the request to `dest`.
    async fn enqueue(
        &self,
        dest: u16,
        frames: Vec<u8>,
        control: Option<super::rebalance::Control>,
    ) -> Result<flume::Receiver<Vec<u8>>, PeerGone> {
        let Some(Some(sender)) = self.request_senders.get(usize::from(dest)) else {
            return Err(PeerGone(dest));
        };
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (tx, rx) = flume::bounded(1);
        self.pending.borrow_mut().insert(token, (dest, tx));
        let request = ForwardRequest {
            token,
            frames,
            control,
        };
        if sender.send(request).await.is_err() {
            self.pending.borrow_mut().remove(&token);
            return Err(PeerGone(dest));
        }
        Ok(rx)
    }

    async fn reply(&self, origin: u16, reply: ForwardReply) {
        if let Some(Some(sender)) = self.reply_senders.get(usize::from(origin)) {
            // If the origin is gone, nobody waits for the reply.
            let _ = sender.send(reply).await;
        }
    }

    fn complete(&self, reply: ForwardReply) {
        if let Some((_, tx)) = self.pending.borrow_mut().remove(&reply.token) {
            let _ = tx.send(reply.responses);
        }
    }

    /// Drops the waiters of messages sent to `dest`: their receivers see a disconnect.
    fn fail_pending_to(&self, dest: u16) {
        self.pending.borrow_mut().retain(|_, (d, _)| *d != dest);
    }

    /// Closes the channels this shard sends on (at shutdown, after its peers are done).
    pub fn close(&self) {
        for s in self.request_senders.iter().flatten() {
            s.close();
        }
        for s in self.reply_senders.iter().flatten() {
            s.close();
        }
    }

    pub fn shard(&self) -> u16 {
        self.shard
    }
}

/// Starts connecting every end in its own task.
fn start_all<E, C, Fut>(
    ends: Vec<Option<E>>,
    connect: impl Fn(E) -> Fut,
) -> Vec<Option<glommio::Task<C>>>
where
    Fut: std::future::Future<Output = C> + 'static,
    C: 'static,
{
    ends.into_iter()
        .map(|end| end.map(|e| glommio::spawn_local(connect(e))))
        .collect()
}

/// Waits for every connecting task started by [`start_all`].
async fn finish_all<C>(tasks: Vec<Option<glommio::Task<C>>>) -> Vec<Option<C>> {
    let mut connected = Vec::with_capacity(tasks.len());
    for task in tasks {
        connected.push(match task {
            Some(t) => Some(t.await),
            None => None,
        });
    }
    connected
}

/// Starts the tasks that serve requests from every peer and route replies to waiters.
pub fn spawn_loops(shard: &ShardRef, receivers: Receivers) {
    for (origin, rx) in receivers.requests.into_iter().enumerate() {
        if let Some(rx) = rx {
            let shard = shard.clone();
            glommio::spawn_local(serve_requests(shard, origin as u16, rx)).detach();
        }
    }
    for (dest, rx) in receivers.replies.into_iter().enumerate() {
        if let Some(rx) = rx {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                while let Some(reply) = rx.recv().await {
                    shard.peers.complete(reply);
                }
                shard.peers.fail_pending_to(dest as u16);
            })
            .detach();
        }
    }
}

async fn serve_requests(shard: ShardRef, origin: u16, rx: ConnectedReceiver<ForwardRequest>) {
    let permits = Rc::new(Semaphore::new(IN_FLIGHT_PER_PEER));
    while let Some(request) = rx.recv().await {
        bump(&shard.counters.forwarded_in_messages, 1);
        let Ok(permit) = permits.acquire_static_permit(1).await else {
            break;
        };
        if let Some(control) = request.control {
            // Slot-move steps run in order with this origin's frames; long ones answer later.
            let encode = |answer: Result<(), String>| match answer {
                Ok(()) => Vec::new(),
                Err(message) => message.into_bytes(),
            };
            let token = request.token;
            match super::rebalance::serve_control(&shard, origin, control).await {
                super::rebalance::Answer::Now(answer) => {
                    let reply = ForwardReply {
                        token,
                        responses: encode(answer),
                    };
                    shard.peers.reply(origin, reply).await;
                    drop(permit);
                }
                super::rebalance::Answer::Later(rx) => {
                    let shard = shard.clone();
                    glommio::spawn_local(async move {
                        let answer = rx
                            .recv_async()
                            .await
                            .unwrap_or_else(|_| Err("the step ended without an answer".into()));
                        let reply = ForwardReply {
                            token,
                            responses: encode(answer),
                        };
                        shard.peers.reply(origin, reply).await;
                        drop(permit);
                    })
                    .detach();
                }
            }
            continue;
        }
        if !super::rebalance::executes_here(&shard, &request.frames, Some(origin)) {
            // Some frame is for a slot this shard no longer owns, or one whose writes are
            // held: route the frames one by one, in order, as a connection would.
            let out = super::rebalance::route_one_by_one(&shard, &request.frames, origin).await;
            let reply = ForwardReply {
                token: request.token,
                responses: out,
            };
            shard.peers.reply(origin, reply).await;
            drop(permit);
            continue;
        }
        let mut out = Vec::with_capacity(request.frames.len() / 2 + 64);
        // Applies writes before the next message is read: per-origin order is kept.
        let admitted = shard.slots.enter();
        let pending = exec::execute(&shard, &request.frames, &mut out).await;
        shard.slots.leave(admitted);
        let token = request.token;
        if pending.is_empty() {
            shard
                .peers
                .reply(
                    origin,
                    ForwardReply {
                        token,
                        responses: out,
                    },
                )
                .await;
            drop(permit);
            continue;
        }
        let shard = shard.clone();
        glommio::spawn_local(async move {
            exec::finish(&shard, pending, &mut out).await;
            shard
                .peers
                .reply(
                    origin,
                    ForwardReply {
                        token,
                        responses: out,
                    },
                )
                .await;
            drop(permit);
        })
        .detach();
    }
}
