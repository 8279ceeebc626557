//! Requests for another shard's keys, sent to one shard's own port, are forwarded inside the
//! node and answered correctly (docs/protocol.md §6: "A request may be sent to any port").
//!
//! A raw, non-shard-aware connection to shard 0's port writes, reads and deletes keys that
//! shard 1 owns (ownership from `ringkv_proto::slot_of` and the TOPOLOGY slot owners);
//! a direct connection to shard 1's port then confirms the data lives on its owner. BATCH
//! and MGET spanning both shards, pipelined writes to one key through forwarding, and STATS
//! (one record per shard) are checked the same way.

use ringkv_proto::slot_of;
use ringkv_tests::dataset::keys_owned_by;
use ringkv_tests::raw::{self, op, BatchOp, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};

fn value_for(key: &[u8], version: u32) -> Vec<u8> {
    let mut v = key.to_vec();
    v.extend_from_slice(format!("=v{version}").as_bytes());
    v
}

fn stat(stats: &[raw::RawShardStats], shard: u16, name: &str) -> u64 {
    stats
        .iter()
        .find(|(s, _)| *s == shard)
        .and_then(|(_, counters)| counters.iter().find(|(n, _)| n == name))
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no counter {name} for shard {shard}"))
}

#[test]
fn shard_port_serves_keys_of_the_other_shard() {
    let server = ServerProcess::start(ServerOptions::default());
    let (mut s0, hello) = RawConn::connect_hello(server.shard_addr(0));
    assert_eq!(hello.status, raw::code::OK, "{hello:?}");
    assert_eq!((hello.shard, hello.shard_count), (0, 2), "{hello:?}");
    let (mut s1, hello) = RawConn::connect_hello(server.shard_addr(1));
    assert_eq!((hello.shard, hello.shard_count), (1, 2), "{hello:?}");

    let topology = raw::parse_topology(&s0.call_ok(op::TOPOLOGY, &[]));
    assert_eq!(
        topology.shard_ports,
        vec![server.shard_addr(0).port(), server.shard_addr(1).port()]
    );
    assert!(topology.epoch >= 1, "{}", topology.epoch);
    assert!(topology.slot_owners.iter().all(|&o| o < 2));
    for shard in 0..2 {
        assert!(
            topology.slot_owners.contains(&shard),
            "shard {shard} owns no slot"
        );
    }
    // Both shards agree on the map.
    let other = raw::parse_topology(&s1.call_ok(op::TOPOLOGY, &[]));
    assert_eq!(other.slot_owners, topology.slot_owners);
    assert_eq!(other.epoch, topology.epoch);

    let before = raw::parse_stats(&s0.call_ok(op::STATS, &[]));
    let forwarded_before = stat(&before, 0, "forwarded_out_messages");

    // PUT / GET / DELETE of shard 1's keys through shard 0's port.
    let remote = keys_owned_by(&topology, 1, "remote", 200);
    for k in &remote {
        s0.put(k, &value_for(k, 1));
    }
    for k in &remote {
        assert_eq!(s0.get(k), Some(value_for(k, 1)), "GET via shard 0");
        assert_eq!(s1.get(k), Some(value_for(k, 1)), "GET on the owner");
    }
    for k in remote.iter().step_by(2) {
        s0.delete(k);
    }
    for (i, k) in remote.iter().enumerate() {
        let expected = (i % 2 == 1).then(|| value_for(k, 1));
        assert_eq!(s0.get(k), expected, "after DELETE, via shard 0");
        assert_eq!(s1.get(k), expected, "after DELETE, on the owner");
    }
    let after = raw::parse_stats(&s0.call_ok(op::STATS, &[]));
    let forwarded = stat(&after, 0, "forwarded_out_messages") - forwarded_before;
    assert!(
        forwarded >= remote.len() as u64,
        "shard 0 forwarded only {forwarded} messages for {} remote keys",
        remote.len()
    );

    // The same in the other direction.
    let local = keys_owned_by(&topology, 0, "local", 100);
    for k in &local {
        s1.put(k, &value_for(k, 1));
    }
    for k in &local {
        assert_eq!(s0.get(k), Some(value_for(k, 1)), "GET on the owner");
    }

    // A BATCH spanning both shards: puts on both, deletes on both.
    let b0 = keys_owned_by(&topology, 0, "batch", 50);
    let b1 = keys_owned_by(&topology, 1, "batch", 50);
    let mut ops = Vec::new();
    let values: Vec<Vec<u8>> = b0.iter().chain(&b1).map(|k| value_for(k, 2)).collect();
    for (k, v) in b0.iter().chain(&b1).zip(&values) {
        ops.push(BatchOp::Put(k, v));
    }
    // Delete five of each shard's local/remote keys in the same batch.
    for k in local
        .iter()
        .take(5)
        .chain(remote.iter().skip(1).step_by(2).take(5))
    {
        ops.push(BatchOp::Delete(k));
    }
    let applied = raw::parse_batch(&s0.call_ok(op::BATCH, &raw::batch_body(&ops)));
    assert_eq!(applied as usize, ops.len());
    for (k, v) in b0.iter().chain(&b1).zip(&values) {
        assert_eq!(s1.get(k).as_ref(), Some(v), "batch key via shard 1");
        assert_eq!(s0.get(k).as_ref(), Some(v), "batch key via shard 0");
    }
    for k in local
        .iter()
        .take(5)
        .chain(remote.iter().skip(1).step_by(2).take(5))
    {
        assert_eq!(s0.get(k), None, "deleted in the batch");
    }

    // A batch of one hash tag owned by shard 1, sent to shard 0 (atomic per slot).
    let tag = (0u32..)
        .map(|i| format!("tag{i}"))
        .find(|t| topology.slot_owners[usize::from(slot_of(t.as_bytes()))] == 1)
        .expect("some tag belongs to shard 1");
    let tagged: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("{{{tag}}}member-{i}").into_bytes())
        .collect();
    let tagged_ops: Vec<BatchOp> = tagged.iter().map(|k| BatchOp::Put(k, k)).collect();
    let applied = raw::parse_batch(&s0.call_ok(op::BATCH, &raw::batch_body(&tagged_ops)));
    assert_eq!(applied, 20);

    // MGET over keys of both shards, missing ones and a duplicate, via both ports.
    let mut mget_keys: Vec<&[u8]> = Vec::new();
    let mut expected = Vec::new();
    for (i, k) in remote.iter().take(20).enumerate() {
        mget_keys.push(k);
        expected.push(match i {
            1 | 3 | 5 | 7 | 9 => None, // deleted by the batch above
            _ if i % 2 == 0 => None,   // deleted by DELETE
            _ => Some(value_for(k, 1)),
        });
        let l = &b0[i];
        mget_keys.push(l);
        expected.push(Some(value_for(l, 2)));
    }
    mget_keys.push(b"never-written");
    expected.push(None);
    mget_keys.push(&tagged[3]);
    expected.push(Some(tagged[3].clone()));
    mget_keys.push(&b1[0]);
    expected.push(Some(value_for(&b1[0], 2)));
    mget_keys.push(&b1[0]);
    expected.push(Some(value_for(&b1[0], 2)));
    for conn in [&mut s0, &mut s1] {
        let got = raw::parse_mget(&conn.call_ok(op::MGET, &raw::mget_body(&mget_keys)));
        assert_eq!(got, expected, "MGET over both shards");
    }

    // STATS from either port reports both shards.
    for conn in [&mut s0, &mut s1] {
        let stats = raw::parse_stats(&conn.call_ok(op::STATS, &[]));
        let mut shards: Vec<u16> = stats.iter().map(|(s, _)| *s).collect();
        shards.sort_unstable();
        assert_eq!(shards, vec![0, 1], "STATS shards");
        for shard in 0..2 {
            assert!(
                stat(&stats, shard, "writes") > 0,
                "shard {shard} saw no writes"
            );
        }
    }
}

#[test]
fn pipelined_writes_through_forwarding_apply_in_order() {
    let server = ServerProcess::start(ServerOptions {
        durability: "none".to_string(),
        ..ServerOptions::default()
    });
    let mut s0 = RawConn::connect(server.shard_addr(0));
    let topology = raw::parse_topology(&s0.call_ok(op::TOPOLOGY, &[]));
    let remote = keys_owned_by(&topology, 1, "pipe-remote", 50);
    let local = keys_owned_by(&topology, 0, "pipe-local", 50);
    // Versions 1..=5 of every key, interleaving local and remote keys, all in one write.
    const VERSIONS: u32 = 5;
    let mut bytes = Vec::new();
    let mut id = 1000u64;
    for version in 1..=VERSIONS {
        for (r, l) in remote.iter().zip(&local) {
            for k in [r, l] {
                bytes.extend(raw::frame(
                    id,
                    op::PUT,
                    0,
                    &raw::put_body(k, &value_for(k, version)),
                ));
                id += 1;
            }
        }
    }
    s0.send(&bytes);
    let sent = (id - 1000) as usize;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..sent {
        let r = s0.read_frame().expect("pipelined response");
        assert_eq!(r.status, raw::code::OK, "{}", r.error_message());
        assert_eq!(r.opcode, op::PUT);
        assert!(
            seen.insert(r.request_id),
            "duplicate response {}",
            r.request_id
        );
    }
    assert_eq!(seen.len(), sent);
    assert_eq!(seen.first(), Some(&1000));
    assert_eq!(seen.last(), Some(&(id - 1)));
    // Requests on a connection apply in the order sent: the last version wins everywhere.
    let mut s1 = RawConn::connect(server.shard_addr(1));
    for k in remote.iter().chain(&local) {
        assert_eq!(s0.get(k), Some(value_for(k, VERSIONS)), "via shard 0");
        assert_eq!(s1.get(k), Some(value_for(k, VERSIONS)), "via shard 1");
    }
}
