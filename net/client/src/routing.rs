//! Shard routing and request splitting, as pure functions (no I/O).
//!
//! [`Router`] is the client's copy of a node's slot map: `shard_of_key(key)` is
//! `slot_owners[slot_of(key)]` (DESIGN.md §3). The helpers below cut a multi-key request
//! into one group per shard while remembering each key's position, cut a group into
//! frame-sized chunks, and put the per-shard answers back in request order.
//!
//! Invariants: a router always has exactly `SLOT_COUNT` owners, each below its shard count
//! (checked in [`Router::new`], so routing never indexes out of bounds); grouping keeps the
//! caller's order inside each group; reassembly fails (instead of guessing) when a shard
//! answered a different number of values than it was asked for.
//!
//! Callers: [`crate::Client`], [`crate::AsyncClient`] and [`crate::Ingest`].

use crate::error::{op_name, ClientError};
use ringkv_proto::request::{BATCH_OPS_MAX, MGET_KEYS_MAX, PING_PAYLOAD_MAX, SCAN_LIMIT_MAX};
use ringkv_proto::{
    slot_of, BatchOp, Request, ScanRequest, Topology, HEADER_BYTES, KEY_BYTES_MAX, SLOT_COUNT,
};
use std::ops::Range;

/// Bytes of the count that follows the header in BATCH and MGET frames.
const COUNT_BYTES: usize = 4;

/// Maps keys and slots to the shard that owns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    epoch: u64,
    shard_count: u16,
    slot_owners: Box<[u16]>,
}

impl Router {
    /// A router for `topology`'s slot map.
    pub fn new(topology: &Topology) -> Result<Self, ClientError> {
        let shard_count = topology.shard_ports.len();
        if shard_count == 0 || shard_count > usize::from(u16::MAX) {
            return Err(ClientError::InvalidArgument(format!(
                "topology lists {shard_count} shards"
            )));
        }
        if topology.slot_owners.len() != usize::from(SLOT_COUNT) {
            return Err(ClientError::InvalidArgument(format!(
                "topology has {} slot owners, expected {SLOT_COUNT}",
                topology.slot_owners.len()
            )));
        }
        if let Some(owner) = topology
            .slot_owners
            .iter()
            .find(|&&owner| usize::from(owner) >= shard_count)
        {
            return Err(ClientError::InvalidArgument(format!(
                "topology assigns a slot to shard {owner} of {shard_count}"
            )));
        }
        Ok(Self {
            epoch: topology.epoch,
            shard_count: shard_count as u16,
            slot_owners: topology.slot_owners.clone().into_boxed_slice(),
        })
    }

    /// The slot map's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// The shard that owns `slot`; slots out of range are an argument error.
    pub fn shard_of_slot(&self, slot: u16) -> Result<u16, ClientError> {
        self.slot_owners
            .get(usize::from(slot))
            .copied()
            .ok_or_else(|| {
                ClientError::InvalidArgument(format!("slot {slot} is not below {SLOT_COUNT}"))
            })
    }

    /// The shard that owns `key`.
    pub fn shard_of_key(&self, key: &[u8]) -> u16 {
        // slot_of is always below SLOT_COUNT and `new` checked the length.
        self.slot_owners[usize::from(slot_of(key))]
    }

    /// For each shard, the positions (in order) of the keys it owns.
    pub fn group_by_shard<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); usize::from(self.shard_count)];
        for (index, key) in keys.into_iter().enumerate() {
            groups[usize::from(self.shard_of_key(key))].push(index);
        }
        groups
    }
}

/// Checks a key against the protocol's bounds before it is sent.
pub fn check_key(key: &[u8]) -> Result<(), ClientError> {
    if key.is_empty() {
        return Err(ClientError::InvalidArgument("key is empty".into()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(ClientError::InvalidArgument(format!(
            "key of {} bytes exceeds the maximum of {KEY_BYTES_MAX} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// Checks that a value's length fits the protocol's u32 length field.
pub fn check_value(value: &[u8]) -> Result<(), ClientError> {
    if value.len() > u32::MAX as usize {
        return Err(ClientError::InvalidArgument(format!(
            "value of {} bytes exceeds the protocol's u32 length",
            value.len()
        )));
    }
    Ok(())
}

/// Checks that a frame of `frame_bytes` fits the server's announced maximum.
pub fn check_frame(op: &str, frame_bytes: usize, max_frame_bytes: u32) -> Result<(), ClientError> {
    if frame_bytes > max_frame_bytes as usize {
        return Err(ClientError::InvalidArgument(format!(
            "{op} frame of {frame_bytes} bytes exceeds the server's maximum of {max_frame_bytes}"
        )));
    }
    Ok(())
}

/// Checks the variable fields of a request that the codec's encoder trusts its caller with
/// (key bounds, payload and cursor lengths). BATCH and MGET views come from the decoder or
/// the in-place writers and are checked where they are built.
pub fn check_request(request: &Request<'_>) -> Result<(), ClientError> {
    match request {
        Request::Ping { payload } => {
            if payload.len() > PING_PAYLOAD_MAX {
                return Err(ClientError::InvalidArgument(format!(
                    "ping payload of {} bytes exceeds the maximum of {PING_PAYLOAD_MAX}",
                    payload.len()
                )));
            }
        }
        Request::Get { key } | Request::Delete { key } => check_key(key)?,
        Request::Put { key, value } => {
            check_key(key)?;
            check_value(value)?;
        }
        Request::Scan(ScanRequest::Slot {
            slot,
            start,
            end,
            limit,
        }) => {
            if *slot >= SLOT_COUNT {
                return Err(ClientError::InvalidArgument(format!(
                    "slot {slot} is not below {SLOT_COUNT}"
                )));
            }
            for bound in [start, end] {
                if !bound.is_empty() {
                    check_key(bound)?;
                }
            }
            check_scan_limit(*limit)?;
        }
        Request::Scan(ScanRequest::Cursor { cursor, limit }) => {
            if cursor.len() > usize::from(u16::MAX) {
                return Err(ClientError::InvalidArgument(format!(
                    "scan cursor of {} bytes is longer than {}",
                    cursor.len(),
                    u16::MAX
                )));
            }
            check_scan_limit(*limit)?;
        }
        Request::Compact { slot, .. } => {
            if *slot >= SLOT_COUNT && *slot != ringkv_proto::request::ALL_SLOTS {
                return Err(ClientError::InvalidArgument(format!(
                    "compact slot {slot} is not below {SLOT_COUNT}"
                )));
            }
        }
        Request::Checkpoint { path, .. } => {
            let max = ringkv_proto::request::CHECKPOINT_PATH_MAX;
            if path.is_empty() || path.len() > max {
                return Err(ClientError::InvalidArgument(format!(
                    "checkpoint path of {} bytes is not in 1..={max}",
                    path.len()
                )));
            }
        }
        Request::Batch(_)
        | Request::MGet(_)
        | Request::Topology
        | Request::Stats
        | Request::Flush { .. }
        | Request::RebalanceApply { .. }
        | Request::RebalanceStatus
        | Request::RebalanceCancel
        | Request::SlotStats => {}
    }
    Ok(())
}

fn check_scan_limit(limit: u32) -> Result<(), ClientError> {
    if limit == 0 || limit > SCAN_LIMIT_MAX {
        return Err(ClientError::InvalidArgument(format!(
            "scan limit {limit} is not in 1..={SCAN_LIMIT_MAX}"
        )));
    }
    Ok(())
}

/// Checks `request`, then appends it to `out` as a frame with `request_id`. A frame larger
/// than `max_frame_bytes` is taken back out of `out` and refused.
pub fn encode_checked(
    request: &Request<'_>,
    request_id: u64,
    out: &mut Vec<u8>,
    max_frame_bytes: u32,
) -> Result<(), ClientError> {
    check_request(request)?;
    let start = out.len();
    request.encode(request_id, out);
    let frame_bytes = out.len() - start;
    if let Err(e) = check_frame(op_name(request.opcode()), frame_bytes, max_frame_bytes) {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// Bytes one operation takes inside a BATCH frame.
pub fn batch_op_bytes(op: &BatchOp<'_>) -> usize {
    match op {
        BatchOp::Put { key, value } => 1 + 2 + key.len() + 4 + value.len(),
        BatchOp::Delete { key } => 1 + 2 + key.len(),
    }
}

/// Checks every op of a batch, then that each shard's part fits one BATCH frame (a shard's
/// part is never split, so that ops of one slot stay in one atomic frame).
pub fn check_batch(
    ops: &[BatchOp<'_>],
    groups: &[Vec<usize>],
    max_frame_bytes: u32,
) -> Result<(), ClientError> {
    for op in ops {
        check_key(op.key())?;
        if let BatchOp::Put { value, .. } = op {
            check_value(value)?;
        }
    }
    for (shard, group) in groups.iter().enumerate() {
        if group.len() > BATCH_OPS_MAX as usize {
            return Err(ClientError::InvalidArgument(format!(
                "batch sends {} ops to shard {shard}; at most {BATCH_OPS_MAX} fit one frame",
                group.len()
            )));
        }
        let bytes = HEADER_BYTES
            + COUNT_BYTES
            + group
                .iter()
                .map(|&i| batch_op_bytes(&ops[i]))
                .sum::<usize>();
        check_frame("BATCH", bytes, max_frame_bytes)?;
    }
    Ok(())
}

/// Cuts one shard's group of MGET keys into chunks that each fit a frame: at most
/// `MGET_KEYS_MAX` keys and `max_frame_bytes` bytes. Returns ranges into `group`.
pub fn mget_chunks<K: AsRef<[u8]>>(
    keys: &[K],
    group: &[usize],
    max_frame_bytes: u32,
) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = HEADER_BYTES + COUNT_BYTES;
    for (at, &index) in group.iter().enumerate() {
        let key_bytes = 2 + keys[index].as_ref().len();
        let full =
            at - start >= MGET_KEYS_MAX as usize || bytes + key_bytes > max_frame_bytes as usize;
        if full && at > start {
            chunks.push(start..at);
            start = at;
            bytes = HEADER_BYTES + COUNT_BYTES;
        }
        bytes += key_bytes;
    }
    if start < group.len() {
        chunks.push(start..group.len());
    }
    chunks
}

/// Puts per-shard answers back in request order: `parts[i]` answers the positions
/// `groups[i]`, in order. Returns `None` if any part has the wrong number of values.
pub fn reassemble<T>(total: usize, groups: &[Vec<usize>], parts: Vec<Vec<T>>) -> Option<Vec<T>> {
    if groups.len() != parts.len() {
        return None;
    }
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(total).collect();
    for (group, part) in groups.iter().zip(parts) {
        if group.len() != part.len() {
            return None;
        }
        for (&index, value) in group.iter().zip(part) {
            let slot = slots.get_mut(index)?;
            if slot.replace(value).is_some() {
                return None;
            }
        }
    }
    slots.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_proto::shard_of_slot;

    fn topology(shards: u16) -> Topology {
        Topology {
            epoch: 7,
            shard_ports: (0..shards).map(|s| 7071 + s).collect(),
            slot_owners: (0..SLOT_COUNT).map(|s| shard_of_slot(s, shards)).collect(),
        }
    }

    #[test]
    fn routes_keys_by_slot_owner() {
        let router = Router::new(&topology(2)).unwrap();
        assert_eq!(router.epoch(), 7);
        assert_eq!(router.shard_count(), 2);
        for i in 0..1000u32 {
            let key = format!("key-{i}");
            let expected = shard_of_slot(slot_of(key.as_bytes()), 2);
            assert_eq!(router.shard_of_key(key.as_bytes()), expected);
        }
        // Hash tags route together.
        assert_eq!(
            router.shard_of_key(b"{user42}:name"),
            router.shard_of_key(b"{user42}:mail")
        );
        assert_eq!(router.shard_of_slot(4095).unwrap(), 1);
        assert!(router.shard_of_slot(4096).is_err());
    }

    #[test]
    fn rejects_malformed_topologies() {
        let mut t = topology(2);
        t.slot_owners.pop();
        assert!(Router::new(&t).is_err());
        let mut t = topology(2);
        t.slot_owners[9] = 2;
        assert!(Router::new(&t).unwrap_err().to_string().contains("shard 2"));
        let mut t = topology(1);
        t.shard_ports.clear();
        assert!(Router::new(&t).is_err());
    }

    #[test]
    fn groups_keep_request_order_and_reassemble() {
        let router = Router::new(&topology(3)).unwrap();
        let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("k{i}").into_bytes()).collect();
        let groups = router.group_by_shard(keys.iter().map(|k| k.as_slice()));
        assert_eq!(groups.len(), 3);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), keys.len());
        for (shard, group) in groups.iter().enumerate() {
            assert!(group.windows(2).all(|w| w[0] < w[1]), "order kept");
            for &i in group {
                assert_eq!(usize::from(router.shard_of_key(&keys[i])), shard);
            }
        }
        // Each shard "answers" with the key itself; reassembly must restore request order.
        let parts: Vec<Vec<Vec<u8>>> = groups
            .iter()
            .map(|g| g.iter().map(|&i| keys[i].clone()).collect())
            .collect();
        let back = reassemble(keys.len(), &groups, parts).unwrap();
        assert_eq!(back, keys);
    }

    #[test]
    fn reassembly_refuses_wrong_counts() {
        let groups = vec![vec![0, 2], vec![1]];
        assert!(reassemble(3, &groups, vec![vec![1, 2], vec![]]).is_none());
        assert!(reassemble(3, &groups, vec![vec![1, 2, 3], vec![4]]).is_none());
        assert!(reassemble(3, &groups, vec![vec![1, 2]]).is_none());
        assert_eq!(
            reassemble(3, &groups, vec![vec![10, 30], vec![20]]),
            Some(vec![10, 20, 30])
        );
        // A position listed twice or out of range is refused too.
        assert!(reassemble(2, &[vec![0, 0]], vec![vec![1, 2]]).is_none());
        assert!(reassemble(1, &[vec![3]], vec![vec![1]]).is_none());
    }

    #[test]
    fn mget_chunks_respect_frame_bytes_and_key_count() {
        let keys: Vec<Vec<u8>> = (0..10).map(|_| vec![b'x'; 100]).collect();
        let group: Vec<usize> = (0..10).collect();
        // Header + count = 20 bytes; each key takes 102; 3 keys fit in 20 + 306 = 326.
        let chunks = mget_chunks(&keys, &group, 330);
        assert_eq!(chunks, vec![0..3, 3..6, 6..9, 9..10]);
        let chunks = mget_chunks(&keys, &group, 1 << 20);
        assert_eq!(chunks, vec![0..10]);
        assert!(mget_chunks(&keys, &[], 1 << 20).is_empty());
        let many: Vec<Vec<u8>> = vec![b"k".to_vec(); MGET_KEYS_MAX as usize + 5];
        let group: Vec<usize> = (0..many.len()).collect();
        let chunks = mget_chunks(&many, &group, u32::MAX);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), MGET_KEYS_MAX as usize);
    }

    #[test]
    fn key_and_batch_checks() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&vec![0; KEY_BYTES_MAX]).is_ok());
        let e = check_key(&vec![0; KEY_BYTES_MAX + 1]).unwrap_err();
        assert!(matches!(e, ClientError::InvalidArgument(_)));
        let ops = [
            BatchOp::Put {
                key: b"a",
                value: &[0; 100],
            },
            BatchOp::Delete { key: b"b" },
        ];
        assert_eq!(batch_op_bytes(&ops[0]), 1 + 2 + 1 + 4 + 100);
        assert_eq!(batch_op_bytes(&ops[1]), 1 + 2 + 1);
        let groups = vec![vec![0, 1]];
        check_batch(&ops, &groups, 1 << 16).unwrap();
        assert!(check_batch(&ops, &groups, 100).is_err());
        let bad = [BatchOp::Delete { key: b"" }];
        assert!(check_batch(&bad, &[vec![0]], 1 << 16).is_err());
        assert!(check_frame("GET", 65, 64).is_err());
        check_frame("GET", 64, 64).unwrap();
    }

    #[test]
    fn encode_checked_refuses_bad_requests_and_leaves_the_buffer_as_it_was() {
        let mut out = b"prefix".to_vec();
        let long = vec![1u8; KEY_BYTES_MAX + 1];
        assert!(encode_checked(&Request::Get { key: &long }, 1, &mut out, 1 << 20).is_err());
        assert_eq!(out, b"prefix");
        let value = vec![0u8; 1000];
        let put = Request::Put {
            key: b"k",
            value: &value,
        };
        let e = encode_checked(&put, 2, &mut out, 512).unwrap_err();
        assert!(e.to_string().contains("PUT frame"), "{e}");
        assert_eq!(out, b"prefix");
        encode_checked(&put, 3, &mut out, 1 << 20).unwrap();
        assert_eq!(out.len(), 6 + 16 + 2 + 1 + 4 + 1000);
        let scan = Request::Scan(ScanRequest::Slot {
            slot: 1,
            start: b"",
            end: b"",
            limit: 0,
        });
        assert!(encode_checked(&scan, 4, &mut out, 1 << 20).is_err());
        let scan = Request::Scan(ScanRequest::Slot {
            slot: SLOT_COUNT,
            start: b"",
            end: b"",
            limit: 10,
        });
        assert!(encode_checked(&scan, 4, &mut out, 1 << 20).is_err());
        let ping = Request::Ping {
            payload: &[0; PING_PAYLOAD_MAX + 1],
        };
        assert!(encode_checked(&ping, 5, &mut out, 1 << 20).is_err());
    }
}
