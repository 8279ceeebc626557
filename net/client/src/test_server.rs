//! A small in-process protocol server for the client's unit tests (test builds only).
//!
//! It speaks the real codec over real TCP sockets: a base listener plus one listener per
//! "shard", a handshake that names the shard, and every data and admin op against one
//! shared ordered map keyed by (slot, key). It is not the ringkv server: it exists so the
//! client's connection handling, pipelining, out-of-order matching, routing, paging,
//! timeouts and failure paths can be tested without one (and, with `sink`, the ingest path's
//! own rate measured). Faults are triggered by key
//! prefixes: `reject*` is refused with INVALID_ARGUMENT, `slow*` is answered after 300 ms,
//! `kill*` makes the server close the connection without answering. With `reverse`, the
//! answers to the frames of one read are written in reverse order.

use ringkv_proto::frame::ServerHello;
use ringkv_proto::request::ScanRequest;
use ringkv_proto::response::{ScanWriter, ValuesWriter};
use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_pong, encode_stats, encode_value,
    shard_of_slot, slot_of, BatchOp, ClientHello, Decoded, ErrorCode, FrameDecoder, Request,
    ShardStats, Topology, CLIENT_HELLO_BYTES, SLOT_COUNT,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

type Store = Arc<Mutex<BTreeMap<(u16, Vec<u8>), Vec<u8>>>>;

#[derive(Clone, Copy)]
pub(crate) struct Options {
    pub(crate) shards: u16,
    pub(crate) reverse: bool,
    pub(crate) max_frame_bytes: u32,
    /// Acknowledge BATCH frames without storing them (to measure the client alone).
    pub(crate) sink: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            shards: 2,
            reverse: false,
            max_frame_bytes: 1 << 20,
            sink: false,
        }
    }
}

pub(crate) struct TestServer {
    pub(crate) base: SocketAddr,
    /// Connections accepted so far (all listeners).
    pub(crate) accepted: Arc<AtomicUsize>,
}

impl TestServer {
    pub(crate) fn start(options: Options) -> Self {
        let store: Store = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let base = TcpListener::bind("127.0.0.1:0").unwrap();
        let shard_listeners: Vec<TcpListener> = (0..options.shards)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = shard_listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let topology = Arc::new(Topology {
            epoch: 1,
            shard_ports: ports,
            slot_owners: (0..SLOT_COUNT)
                .map(|s| shard_of_slot(s, options.shards))
                .collect(),
        });
        let base_addr = base.local_addr().unwrap();
        let listeners = std::iter::once((0, base)).chain(
            shard_listeners
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i as u16, l)),
        );
        for (shard, listener) in listeners {
            let (store, topology, accepted) = (store.clone(), topology.clone(), accepted.clone());
            thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (store, topology) = (store.clone(), topology.clone());
                    thread::spawn(move || serve(stream, shard, options, &store, &topology));
                }
            });
        }
        Self {
            base: base_addr,
            accepted,
        }
    }
}

fn serve(mut stream: TcpStream, shard: u16, options: Options, store: &Store, topology: &Topology) {
    let mut hello = [0u8; CLIENT_HELLO_BYTES];
    if stream.read_exact(&mut hello).is_err() || ClientHello::decode(&hello).is_err() {
        return;
    }
    let answer = ServerHello {
        version: 1,
        status: ErrorCode::OK,
        max_frame_bytes: options.max_frame_bytes,
        shard,
        shard_count: options.shards,
    };
    if stream.write_all(&answer.encode()).is_err() {
        return;
    }
    let decoder = FrameDecoder::new(options.max_frame_bytes);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut answers = Vec::new();
        let mut used = 0;
        loop {
            match decoder.next(&buf[used..]) {
                Ok(Decoded::Frame(frame, len)) => {
                    let mut out = Vec::new();
                    let keep_going = match Request::decode(frame.header.opcode, frame.body) {
                        Ok(Request::Batch(batch)) if options.sink => {
                            encode_batch_done(
                                &mut out,
                                frame.header.request_id,
                                batch.len() as u32,
                            );
                            true
                        }
                        Ok(request) => {
                            handle(&request, frame.header.request_id, store, topology, &mut out)
                        }
                        Err(e) => {
                            let op = frame.header.opcode;
                            encode_error(&mut out, frame.header.request_id, op, e.code(), "bad");
                            false
                        }
                    };
                    answers.push(out);
                    used += len;
                    if !keep_going {
                        let _ = stream.write_all(&answers.concat());
                        return;
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(_) => return,
            }
        }
        buf.drain(..used);
        if options.reverse {
            answers.reverse();
        }
        if stream.write_all(&answers.concat()).is_err() {
            return;
        }
    }
}

/// Answers one request into `out`; returns false if the connection must close.
fn handle(
    request: &Request<'_>,
    id: u64,
    store: &Store,
    topology: &Topology,
    out: &mut Vec<u8>,
) -> bool {
    let mut map = store.lock().unwrap();
    let entry_key = |key: &[u8]| (slot_of(key), key.to_vec());
    let op = request.opcode();
    let rejected = |key: &[u8]| key.starts_with(b"reject");
    match request {
        Request::Ping { payload } => encode_pong(out, id, payload),
        Request::Get { key } => encode_value(out, id, map.get(&entry_key(key)).map(|v| &v[..])),
        Request::Put { key, value } => {
            if key.starts_with(b"kill") {
                return false;
            }
            if rejected(key) {
                encode_error(out, id, op, ErrorCode::INVALID_ARGUMENT, "rejected");
                return true;
            }
            if key.starts_with(b"slow") {
                drop(map);
                thread::sleep(Duration::from_millis(300));
                map = store.lock().unwrap();
            }
            map.insert(entry_key(key), value.to_vec());
            encode_done(out, id, op);
        }
        Request::Delete { key } => {
            map.remove(&entry_key(key));
            encode_done(out, id, op);
        }
        Request::Batch(batch) => {
            if batch.iter().any(|op| op.key().starts_with(b"kill")) {
                return false;
            }
            if batch.iter().any(|op| op.key().starts_with(b"slow")) {
                drop(map);
                thread::sleep(Duration::from_millis(300));
                map = store.lock().unwrap();
            }
            if batch.iter().any(|op| rejected(op.key())) {
                encode_error(out, id, op, ErrorCode::INVALID_ARGUMENT, "batch rejected");
                return true;
            }
            for op in batch.iter() {
                match op {
                    BatchOp::Put { key, value } => map.insert(entry_key(key), value.to_vec()),
                    BatchOp::Delete { key } => map.remove(&entry_key(key)),
                };
            }
            encode_batch_done(out, id, batch.len() as u32);
        }
        Request::MGet(keys) => {
            let mut writer = ValuesWriter::begin(out, id);
            for key in keys.iter() {
                writer.value(out, map.get(&entry_key(key)).map(|v| &v[..]));
            }
            writer.finish(out);
        }
        Request::Scan(ScanRequest::Slot {
            slot,
            start,
            end,
            limit,
        }) => {
            let mut writer = ScanWriter::begin(out, id);
            let mut next: &[u8] = b"";
            let from = (*slot, start.to_vec());
            for ((s, key), value) in map.range(from..) {
                if *s != *slot || (!end.is_empty() && key.as_slice() >= *end) {
                    break;
                }
                if writer.count() == *limit {
                    next = key;
                    break;
                }
                writer.entry(out, key, value);
            }
            let next = next.to_vec();
            writer.finish(out, &next);
        }
        Request::Scan(ScanRequest::Cursor { cursor, limit }) => {
            let from = match cursor.len() {
                0 => (0, Vec::new()),
                _ => (
                    u16::from_be_bytes([cursor[0], cursor[1]]),
                    cursor[2..].to_vec(),
                ),
            };
            let mut writer = ScanWriter::begin(out, id);
            let mut next = Vec::new();
            for ((slot, key), value) in map.range(from..) {
                if writer.count() == *limit {
                    next = slot.to_be_bytes().to_vec();
                    next.extend_from_slice(key);
                    break;
                }
                writer.entry(out, key, value);
            }
            writer.finish(out, &next);
        }
        Request::Topology => topology.encode(id, out),
        Request::Stats => {
            let shards: Vec<ShardStats> = (0..topology.shard_ports.len() as u16)
                .map(|shard| ShardStats {
                    shard,
                    values: vec![("keys".into(), map.len() as u64)],
                })
                .collect();
            encode_stats(out, id, &shards);
        }
        // Admin operations are tested against the real server.
        Request::Flush { .. }
        | Request::Compact { .. }
        | Request::Checkpoint { .. }
        | Request::RebalanceApply { .. }
        | Request::RebalanceStatus
        | Request::RebalanceCancel
        | Request::SlotStats => {
            encode_error(out, id, op, ErrorCode::INVALID_ARGUMENT, "not in the fake")
        }
    }
    true
}
