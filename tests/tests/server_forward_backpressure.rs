//! A slow owner pushes back on the shard that forwards to it, instead of letting queues grow.
//!
//! Two clients connect to shard 0's own port and write BATCH frames whose keys all belong to
//! shard 1, as fast as their sockets take them, while a reader per connection counts
//! acknowledgements. Shard 0 only routes; shard 1 applies every write with `sync`
//! durability, so shard 1 is the bottleneck. If the forwarding channel or the connection
//! pipeline were unbounded, shard 0 would keep reading and the bytes a client has written
//! but not yet had acknowledged would grow towards the whole flood. With the bounds (channel
//! depth 64 messages, 16 waves per connection, reads paused when either is full), that
//! difference stays near what the kernel's socket buffers plus those bounds can hold.

use ringkv_proto::{shard_of_slot, slot_of};
use ringkv_tests::raw::{self, BatchOp, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes each client writes.
const FLOOD_BYTES: u64 = 48 << 20;
/// Puts per BATCH frame and value size: frames of about 13 KiB.
const OPS_PER_FRAME: usize = 100;
const VALUE_BYTES: usize = 100;
/// Most bytes one connection may have written and not had acknowledged. Kernel socket
/// buffers on loopback grow to a few MiB in each direction (tcp_wmem/tcp_rmem maxima of 4 and
/// 6 MiB by default); the server holds at most 16 waves of at most 256 KiB per connection
/// plus its share of the 64-message forwarding channel (~16 MiB). Unbounded queues would let
/// this approach the whole 48 MiB flood (the owner absorbs only a few MiB meanwhile); a run
/// measured 15 MiB at worst.
const OUTSTANDING_BYTES_MAX: u64 = 32 << 20;

fn shard1_keys(count: usize) -> Vec<Vec<u8>> {
    (0u64..)
        .map(|i| format!("bp-{i:012}").into_bytes())
        .filter(|k| shard_of_slot(slot_of(k), 2) == 1)
        .take(count)
        .collect()
}

#[test]
fn slow_owner_bounds_what_a_forwarding_shard_accepts() {
    let server = ServerProcess::start(ServerOptions::default());
    let keys = Arc::new(shard1_keys(20_000));
    let value = vec![b'v'; VALUE_BYTES];
    let one_frame: Vec<BatchOp<'_>> = (0..OPS_PER_FRAME)
        .map(|_| BatchOp::Put(&keys[0], &value))
        .collect();
    // Every frame has the same size: keys and values have fixed lengths.
    let frame_bytes = raw::frame(0, raw::op::BATCH, 0, &raw::batch_body(&one_frame)).len() as u64;
    let mut workers = Vec::new();
    for c in 0..2usize {
        let (conn, hello) = RawConn::connect_hello(server.shard_addr(0));
        assert_eq!(hello.status, raw::code::OK);
        assert_eq!(hello.shard, 0);
        let mut writer = conn.stream.try_clone().expect("clone stream");
        let mut reader = conn.stream;
        reader
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let written = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let frames_sent = Arc::new(AtomicU64::new(0));
        let keys = keys.clone();
        let value = value.clone();
        let (w, a, f) = (written.clone(), acked.clone(), frames_sent.clone());
        let w_read = written.clone();
        let write_thread = std::thread::spawn(move || {
            let mut id = 1u64;
            let mut n = c * 7919;
            while w.load(Ordering::Relaxed) < FLOOD_BYTES {
                let ops: Vec<BatchOp<'_>> = (0..OPS_PER_FRAME)
                    .map(|_| {
                        n += 1;
                        BatchOp::Put(&keys[n % keys.len()], &value)
                    })
                    .collect();
                let frame = raw::frame(id, raw::op::BATCH, 0, &raw::batch_body(&ops));
                id += 1;
                writer.write_all(&frame).expect("writing a frame");
                w.fetch_add(frame.len() as u64, Ordering::Relaxed);
                f.fetch_add(1, Ordering::Relaxed);
            }
            id - 1
        });
        let read_thread = std::thread::spawn(move || {
            let mut header = [0u8; raw::HEADER_BYTES];
            let mut errors = 0u64;
            loop {
                if reader.read_exact(&mut header).is_err() {
                    break;
                }
                let body_len =
                    u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let status = u16::from_le_bytes([header[14], header[15]]);
                let mut body = vec![0u8; body_len];
                reader
                    .read_exact(&mut body)
                    .expect("reading a response body");
                if status != raw::code::OK {
                    errors += 1;
                }
                a.fetch_add(frame_bytes, Ordering::Relaxed);
                if a.load(Ordering::Relaxed) >= FLOOD_BYTES
                    && a.load(Ordering::Relaxed) >= w_read.load(Ordering::Relaxed)
                {
                    break;
                }
            }
            errors
        });
        workers.push((write_thread, read_thread, written, acked));
    }

    // Sample the outstanding bytes of each connection while the flood runs.
    let started = Instant::now();
    let mut worst = 0u64;
    while workers.iter().any(|(_, _, w, a)| {
        a.load(Ordering::Relaxed) < w.load(Ordering::Relaxed)
            || w.load(Ordering::Relaxed) < FLOOD_BYTES
    }) {
        for (_, _, w, a) in &workers {
            let outstanding = w
                .load(Ordering::Relaxed)
                .saturating_sub(a.load(Ordering::Relaxed));
            worst = worst.max(outstanding);
        }
        assert!(
            worst <= OUTSTANDING_BYTES_MAX,
            "a connection had {} MiB written but not acknowledged (bound {} MiB): shard 0 kept accepting \
             what shard 1 could not absorb\n{}",
            worst >> 20,
            OUTSTANDING_BYTES_MAX >> 20,
            server.diagnostics()
        );
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "flood did not finish\n{}",
            server.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for (write_thread, read_thread, _, _) in workers {
        write_thread.join().expect("writer");
        let errors = read_thread.join().expect("reader");
        assert_eq!(errors, 0, "the server answered some batches with errors");
    }
    // What was acknowledged was applied on shard 1: read a sample back from its own port.
    let client = ringkv_client::Client::connect(
        server.addr().to_string(),
        ringkv_client::ClientConfig::default(),
    )
    .expect("client");
    let sample: Vec<&Vec<u8>> = keys.iter().step_by(997).collect();
    for (key, got) in sample.iter().zip(client.mget(&sample).expect("mget")) {
        assert_eq!(
            got.as_deref(),
            Some(value.as_slice()),
            "key {:?}",
            String::from_utf8_lossy(key)
        );
    }
    println!(
        "flood of 2 x {} MiB: worst outstanding {} KiB",
        FLOOD_BYTES >> 20,
        worst >> 10
    );
}
