//! Pipelined reads sent in one write, so that the server executes them as one wave and looks
//! its consecutive GETs up together (net/server/src/shard/reads.rs): every response carries
//! the value a lone GET would get, under its own request id, with PINGs, MGETs and GETs of
//! the other shard's keys (forwarded) interleaved. Checked with the data in the memtable,
//! then after a graceful restart (the data in tables: first read from disk, then from the
//! block cache).

use ringkv_tests::dataset::keys_owned_by;
use ringkv_tests::raw::{self, code, op, BatchOp, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};
use std::collections::HashMap;

fn value_for(key: &[u8]) -> Vec<u8> {
    let mut v = key.to_vec();
    v.extend_from_slice(b"=value");
    v
}

/// What each request of the wave must be answered with.
enum Expect {
    Get(Option<Vec<u8>>),
    MGet(Vec<Option<Vec<u8>>>),
    Pong(Vec<u8>),
}

struct Data {
    own: Vec<Vec<u8>>,
    far: Vec<Vec<u8>>,
}

impl Data {
    /// Every seventh key was deleted after being written.
    fn expected(&self, keys: &[Vec<u8>], i: usize) -> Option<Vec<u8>> {
        (i % 7 != 0).then(|| value_for(&keys[i]))
    }
}

fn write_data(conn: &mut RawConn, data: &Data) {
    for keys in [&data.own, &data.far] {
        let values: Vec<Vec<u8>> = keys.iter().map(|k| value_for(k)).collect();
        for chunk in keys.iter().zip(&values).collect::<Vec<_>>().chunks(100) {
            let ops: Vec<BatchOp> = chunk.iter().map(|(k, v)| BatchOp::Put(k, v)).collect();
            conn.call_ok(op::BATCH, &raw::batch_body(&ops));
        }
        let deletes: Vec<BatchOp> = keys.iter().step_by(7).map(|k| BatchOp::Delete(k)).collect();
        conn.call_ok(op::BATCH, &raw::batch_body(&deletes));
    }
}

/// Sends the whole wave in one write and checks every response by request id.
fn check_wave(conn: &mut RawConn, data: &Data) {
    let mut wave = Vec::new();
    let mut expect: HashMap<u64, Expect> = HashMap::new();
    let mut id = 10_000u64;
    let mut next = || {
        id += 1;
        id
    };
    for i in 0..data.own.len() {
        let request = next();
        wave.extend(raw::frame(
            request,
            op::GET,
            0,
            &raw::key_body(&data.own[i]),
        ));
        expect.insert(request, Expect::Get(data.expected(&data.own, i)));
        // A key nobody wrote, now and then.
        if i % 3 == 0 {
            let request = next();
            let absent = format!("absent-{i}");
            wave.extend(raw::frame(
                request,
                op::GET,
                0,
                &raw::key_body(absent.as_bytes()),
            ));
            expect.insert(request, Expect::Get(None));
        }
        if i % 97 == 50 {
            let request = next();
            let payload = format!("ping-{i}").into_bytes();
            wave.extend(raw::frame(request, op::PING, 0, &payload));
            expect.insert(request, Expect::Pong(payload));
        }
        if i % 61 == 30 {
            let j = (i / 61) % data.far.len();
            let request = next();
            wave.extend(raw::frame(
                request,
                op::GET,
                0,
                &raw::key_body(&data.far[j]),
            ));
            expect.insert(request, Expect::Get(data.expected(&data.far, j)));
        }
        if i % 150 == 149 {
            let from = i - 40;
            let mut keys: Vec<&[u8]> = data.own[from..i].iter().map(|k| k.as_slice()).collect();
            keys.push(b"absent-in-mget");
            let mut values: Vec<Option<Vec<u8>>> =
                (from..i).map(|j| data.expected(&data.own, j)).collect();
            values.push(None);
            let request = next();
            wave.extend(raw::frame(request, op::MGET, 0, &raw::mget_body(&keys)));
            expect.insert(request, Expect::MGet(values));
        }
    }
    conn.send(&wave);
    for _ in 0..expect.len() {
        let r = conn.read_frame().expect("reading a response of the wave");
        assert_eq!(
            r.status,
            code::OK,
            "request {}: {}",
            r.request_id,
            r.error_message()
        );
        let wanted = expect
            .remove(&r.request_id)
            .unwrap_or_else(|| panic!("unexpected or repeated response id {}", r.request_id));
        match wanted {
            Expect::Get(value) => {
                assert_eq!(r.opcode, op::GET, "request {}", r.request_id);
                assert_eq!(raw::parse_get(&r.body), value, "request {}", r.request_id);
            }
            Expect::MGet(values) => {
                assert_eq!(r.opcode, op::MGET, "request {}", r.request_id);
                assert_eq!(raw::parse_mget(&r.body), values, "request {}", r.request_id);
            }
            Expect::Pong(payload) => {
                assert_eq!(r.opcode, op::PING, "request {}", r.request_id);
                assert_eq!(r.body, payload, "request {}", r.request_id);
            }
        }
    }
    assert!(expect.is_empty());
}

#[test]
fn pipelined_gets_in_one_wave_answer_like_lone_gets() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let mut conn = RawConn::connect(server.shard_addr(0));
    let topology = raw::parse_topology(&conn.call_ok(op::TOPOLOGY, &[]));
    let data = Data {
        own: keys_owned_by(&topology, 0, "own", 700),
        far: keys_owned_by(&topology, 1, "far", 20),
    };
    write_data(&mut conn, &data);
    check_wave(&mut conn, &data);

    // A graceful stop flushes the memtables: the keys now live in tables.
    drop(conn);
    assert!(server.terminate().success(), "{}", server.stderr_tail());
    server.restart();
    let mut conn = RawConn::connect(server.shard_addr(0));
    check_wave(&mut conn, &data); // blocks read from disk
    check_wave(&mut conn, &data); // blocks from the cache
}
