//! Client connections: the accept loops, the connection limit and the handshake.
//!
//! Every shard accepts on the node's base port (shared through SO_REUSEPORT, so the kernel
//! spreads connections over shards) and on its own port `base + 1 + shard`. A connection is
//! served entirely by the shard that accepted it ([`session`]); frames for other shards'
//! keys are forwarded ([`wave`]).
//!
//! Limits: at most `max_connections` open connections per node (one more is answered
//! TOO_MANY_CONNECTIONS in the server hello and closed); the client hello must arrive within
//! `handshake_timeout`.

pub mod session;
pub mod wave;

use crate::shard::{bump, ShardRef};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use ringkv_proto::{ClientHello, ErrorCode, ServerHello, CLIENT_HELLO_BYTES, VERSION, VERSION_MIN};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Accepts connections on `listener` until shutdown, serving each in its own task.
pub async fn accept_loop(shard: ShardRef, listener: TcpListener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.shutdown.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let shard = shard.clone();
                glommio::spawn_local(async move { admit(shard, stream).await }).detach();
            }
            Some(Err(e)) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Applies the connection limit, then serves the connection.
async fn admit(shard: ShardRef, mut stream: TcpStream) {
    let open = shard.node_connections.fetch_add(1, Ordering::Relaxed);
    if open >= shard.config.max_connections {
        shard.node_connections.fetch_sub(1, Ordering::Relaxed);
        bump(&shard.counters.connections_rejected, 1);
        tracing::warn!(
            shard = shard.id,
            max = shard.config.max_connections,
            "connection refused: limit reached"
        );
        let _ = send_hello(&shard, &mut stream, ErrorCode::TOO_MANY_CONNECTIONS).await;
        let _ = stream.close().await;
        return;
    }
    bump(&shard.counters.connections_accepted, 1);
    bump(&shard.counters.connections_open, 1);
    shard.open_connections.set(shard.open_connections.get() + 1);
    let peer = stream.peer_addr().ok();
    match handshake(&shard, &mut stream).await {
        Ok(()) => session::serve(&shard, stream).await,
        Err(reason) => {
            tracing::debug!(shard = shard.id, ?peer, reason, "handshake failed");
            let _ = stream.close().await;
        }
    }
    shard.node_connections.fetch_sub(1, Ordering::Relaxed);
    shard
        .counters
        .connections_open
        .set(shard.counters.connections_open.get() - 1);
    shard.open_connections.set(shard.open_connections.get() - 1);
    shard.connections_changed.notify_all();
}

async fn send_hello(
    shard: &ShardRef,
    stream: &mut TcpStream,
    status: ErrorCode,
) -> std::io::Result<()> {
    let hello = ServerHello {
        version: VERSION,
        status,
        max_frame_bytes: shard.config.max_frame_bytes,
        shard: shard.id,
        shard_count: shard.map().shard_count,
    };
    stream.write_all(&hello.encode()).await?;
    stream.flush().await
}

/// Reads the client hello and answers it. On any failure the server hello (if the client
/// got that far) carries the reason, and the caller closes the connection.
async fn handshake(shard: &ShardRef, stream: &mut TcpStream) -> Result<(), &'static str> {
    let mut hello = [0u8; CLIENT_HELLO_BYTES];
    let read =
        futures_lite::future::or(async { Some(stream.read_exact(&mut hello).await) }, async {
            glommio::timer::sleep(shard.config.handshake_timeout).await;
            None
        })
        .await;
    match read {
        None => return Err("no hello within the handshake timeout"),
        Some(Err(_)) => return Err("connection closed during the handshake"),
        Some(Ok(())) => {}
    }
    let status = match ClientHello::decode(&hello) {
        Err(_) => ErrorCode::BAD_FRAME,
        Ok(h) if !(VERSION_MIN..=VERSION).contains(&h.version) => ErrorCode::UNSUPPORTED_VERSION,
        Ok(_) => ErrorCode::OK,
    };
    if send_hello(shard, stream, status).await.is_err() {
        return Err("could not send the server hello");
    }
    if status != ErrorCode::OK {
        return Err(if status == ErrorCode::BAD_FRAME {
            "bad client hello"
        } else {
            "unsupported version"
        });
    }
    stream
        .set_nodelay(true)
        .map_err(|_| "could not set TCP_NODELAY")?;
    Ok(())
}
