//! proptest strategies for valid requests and responses, with lengths that reach every limit
//! of the protocol (longest key, longest PING payload, longest cursor) now and then.

use super::{Msg, Op, Req, Resp};
use proptest::collection::vec;
use proptest::prelude::*;
use ringkv_proto::request::{ALL_SLOTS, CHECKPOINT_PATH_MAX};
use ringkv_proto::request::{PING_PAYLOAD_MAX, SCAN_LIMIT_MAX};
use ringkv_proto::{opcode, ErrorCode, ShardStats, Topology, KEY_BYTES_MAX, SLOT_COUNT};
use ringkv_proto::{rebalance_state, RebalanceStatus, SlotStat};

/// Bytes of `len` in `min..=max`, either random (short) or a repeated byte (long, cheap).
pub fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    let short_max = max.min(min + 32);
    prop_oneof![
        12 => vec(any::<u8>(), min..=short_max),
        1 => (any::<u8>(), min..=max).prop_map(|(b, n)| vec![b; n]),
        1 => (any::<u8>(), max.saturating_sub(2).max(min)..=max).prop_map(|(b, n)| vec![b; n]),
    ]
}

pub fn key() -> impl Strategy<Value = Vec<u8>> {
    bytes(1, KEY_BYTES_MAX)
}

pub fn value() -> impl Strategy<Value = Vec<u8>> {
    bytes(0, 64 << 10)
}

pub fn scan_limit() -> impl Strategy<Value = u32> {
    prop_oneof![1..=SCAN_LIMIT_MAX, Just(1), Just(SCAN_LIMIT_MAX)]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        key().prop_map(Op::Delete),
    ]
}

pub fn request() -> impl Strategy<Value = Req> {
    prop_oneof![
        bytes(0, PING_PAYLOAD_MAX).prop_map(Req::Ping),
        key().prop_map(Req::Get),
        (key(), value()).prop_map(|(k, v)| Req::Put(k, v)),
        key().prop_map(Req::Delete),
        vec(op(), 0..12).prop_map(Req::Batch),
        vec(key(), 0..12).prop_map(Req::MGet),
        (
            0..SLOT_COUNT,
            prop_oneof![Just(Vec::new()), key()],
            prop_oneof![Just(Vec::new()), key()],
            scan_limit()
        )
            .prop_map(|(slot, start, end, limit)| Req::ScanSlot {
                slot,
                start,
                end,
                limit
            }),
        (bytes(0, u16::MAX as usize), scan_limit())
            .prop_map(|(cursor, limit)| Req::ScanCursor { cursor, limit }),
        Just(Req::Topology),
        Just(Req::Stats),
        any::<u16>().prop_map(Req::Flush),
        (
            any::<u16>(),
            prop_oneof![0..SLOT_COUNT, Just(ALL_SLOTS)],
            any::<bool>()
        )
            .prop_map(|(shard, slot, wait)| Req::Compact { shard, slot, wait }),
        (any::<u16>(), bytes(1, CHECKPOINT_PATH_MAX))
            .prop_map(|(shard, path)| Req::Checkpoint { shard, path }),
        (any::<u64>(), vec((0..SLOT_COUNT, any::<u16>()), 0..20)).prop_map(
            |(max_bytes_per_sec, moves)| Req::RebalanceApply {
                max_bytes_per_sec,
                moves
            }
        ),
        Just(Req::RebalanceStatus),
        Just(Req::RebalanceCancel),
        Just(Req::SlotStats),
    ]
}

pub fn topology() -> impl Strategy<Value = Topology> {
    (any::<u64>(), 1u16..=64).prop_flat_map(|(epoch, shards)| {
        (
            Just(epoch),
            vec(any::<u16>(), usize::from(shards)),
            vec(0..shards, usize::from(SLOT_COUNT)),
        )
            .prop_map(|(epoch, shard_ports, slot_owners)| Topology {
                epoch,
                shard_ports,
                slot_owners,
            })
    })
}

/// Counter names, some longer than STAT_NAME_MAX (the encoder cuts those).
pub fn stat_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z_.]{0,40}",
        4 => "\\PC{0,63}",
        1 => "[a-z]{255}",
        1 => "[a-z]{253}é",
        1 => "[a-z]{254}é",
        1 => "\\PC{60,300}",
    ]
}

pub fn stats() -> impl Strategy<Value = Vec<ShardStats>> {
    vec(
        (any::<u16>(), vec((stat_name(), any::<u64>()), 0..8))
            .prop_map(|(shard, values)| ShardStats { shard, values }),
        0..6,
    )
}

pub fn error_message() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "\\PC{0,80}",
        1 => "[a-z]{1020,1030}",
        1 => "\\PC{300,1100}",
    ]
}

pub fn response() -> impl Strategy<Value = Resp> {
    prop_oneof![
        bytes(0, PING_PAYLOAD_MAX).prop_map(Resp::Pong),
        proptest::option::of(value()).prop_map(Resp::Value),
        prop_oneof![
            Just(opcode::PUT),
            Just(opcode::DELETE),
            Just(opcode::FLUSH),
            Just(opcode::COMPACT),
            Just(opcode::CHECKPOINT)
        ]
        .prop_map(Resp::Done),
        any::<u32>().prop_map(Resp::BatchDone),
        vec(proptest::option::of(value()), 0..12).prop_map(Resp::MGet),
        (
            vec((key(), value()), 0..12),
            prop_oneof![Just(Vec::new()), bytes(1, u16::MAX as usize)]
        )
            .prop_map(|(entries, next)| Resp::Scan { entries, next }),
        topology().prop_map(Resp::Topology),
        stats().prop_map(Resp::Stats),
        (
            0..=rebalance_state::FAILED,
            any::<(u32, u32, u64, u64, u64)>(),
            proptest::option::of(0..SLOT_COUNT),
            error_message()
        )
            .prop_map(
                |(
                    state,
                    (moves_total, moves_done, bytes_copied, keys_copied, epoch),
                    current_slot,
                    message,
                )| {
                    Resp::Rebalance(RebalanceStatus {
                        state,
                        moves_total,
                        moves_done,
                        current_slot,
                        bytes_copied,
                        keys_copied,
                        epoch,
                        message,
                    })
                }
            ),
        vec(
            (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(|(owner, bytes, ops)| SlotStat {
                owner,
                bytes,
                ops
            }),
            0..50
        )
        .prop_map(Resp::SlotStats),
        (any::<u8>(), 1..=u16::MAX, error_message()).prop_map(|(opcode, code, message)| {
            Resp::Error {
                opcode,
                code: ErrorCode(code),
                message,
            }
        }),
    ]
}

pub fn message() -> impl Strategy<Value = Msg> {
    prop_oneof![request().prop_map(Msg::Req), response().prop_map(Msg::Resp)]
}

/// Every opcode the decoders know, and a few they do not.
pub fn any_opcode() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![
            opcode::PING,
            opcode::GET,
            opcode::PUT,
            opcode::DELETE,
            opcode::BATCH,
            opcode::MGET,
            opcode::SCAN,
            opcode::TOPOLOGY,
            opcode::STATS,
        ]),
        1 => any::<u8>(),
    ]
}
