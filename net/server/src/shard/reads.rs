//! Point reads of a wave, looked up together.
//!
//! Consecutive GET frames of a wave (and the keys of one MGET) are handed to the engine's
//! [`Db::get_many_into`] in groups, so that their cache misses overlap (see the engine's
//! `multiget.rs`); the responses are the ones single GETs would give, in frame order. A group
//! holds at most [`READ_GROUP_MAX`] frames; the buffers are kept by the shard and reused.
//!
//! [`Db::get_many_into`]: ringkv_engine::Db::get_many_into

use super::exec::error_code;
use super::{bump, Shard};
use ringkv_engine::db::{GetManySink, GET_MANY_GROUP};
use ringkv_engine::Result as EngineResult;
use ringkv_proto::{
    begin_get_in_place, encode_error, finish_get_in_place, finish_value_in_place, opcode,
    ErrorCode, ValueInPlace, ValuesWriter,
};

/// Most GET frames queued before they are looked up.
pub const READ_GROUP_MAX: usize = 256;

/// Queued GET frames: request ids and stored keys (back to back, with their ends).
#[derive(Default)]
pub struct ReadGroup {
    ids: Vec<u64>,
    keys: Vec<u8>,
    ends: Vec<usize>,
}

impl ReadGroup {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_full(&self) -> bool {
        self.ids.len() >= READ_GROUP_MAX
    }

    /// Queues a GET of `key`, of `slot` (checked and counted by the caller), in its stored
    /// form.
    pub fn push(&mut self, id: u64, slot: u16, key: &[u8]) {
        self.ids.push(id);
        ringkv_proto::stored_key(slot, key, &mut self.keys);
        self.ends.push(self.keys.len());
    }

    /// The queued stored keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.ends.iter().scan(0, |start, &end| {
            let key = &self.keys[*start..end];
            *start = end;
            Some(key)
        })
    }

    /// Bytes of buffer held (a pool drops groups an MGET made large).
    pub fn capacity_bytes(&self) -> usize {
        self.keys.capacity() + (self.ids.capacity() + self.ends.capacity()) * 8
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.keys.clear();
        self.ends.clear();
    }

    /// Looks up every queued GET and appends their responses to `out`, in order; empties
    /// the group.
    pub async fn run(&mut self, shard: &Shard, out: &mut Vec<u8>) {
        let mut from = 0;
        while from < self.ids.len() {
            let to = (from + GET_MANY_GROUP).min(self.ids.len());
            let mut keys: [&[u8]; GET_MANY_GROUP] = [&[]; GET_MANY_GROUP];
            for (slot, i) in keys.iter_mut().zip(from..to) {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                *slot = &self.keys[start..self.ends[i]];
            }
            let mut sink = GetResponses {
                shard,
                ids: &self.ids[from..to],
                started: None,
            };
            shard
                .db
                .get_many_into(&keys[..to - from], out, &mut sink)
                .await;
            from = to;
        }
        self.clear();
    }
}

/// Writes one GET response per key.
struct GetResponses<'a> {
    shard: &'a Shard,
    ids: &'a [u64],
    started: Option<(usize, ValueInPlace)>,
}

impl GetManySink for GetResponses<'_> {
    fn begin(&mut self, i: usize, out: &mut Vec<u8>) {
        self.started = Some(begin_get_in_place(out, self.ids[i]));
    }

    fn end(&mut self, i: usize, out: &mut Vec<u8>, result: EngineResult<bool>) -> bool {
        let Some(started) = self.started.take() else {
            return false;
        };
        match result {
            Ok(found) => finish_get_in_place(out, started, found),
            Err(e) => {
                out.truncate(started.0);
                bump(&self.shard.counters.errors, 1);
                encode_error(
                    out,
                    self.ids[i],
                    opcode::GET,
                    error_code(&e),
                    &e.to_string(),
                );
            }
        }
        true
    }
}

/// Appends the values of `keys` (stored keys, checked and counted by the caller) to an MGET
/// response being built by `writer`; stops at the first error and returns it.
pub async fn mget_values<'k>(
    shard: &Shard,
    keys: impl Iterator<Item = &'k [u8]>,
    writer: &mut ValuesWriter,
    out: &mut Vec<u8>,
) -> Result<(), (ErrorCode, String)> {
    let mut sink = ValueSlots {
        writer,
        slot: None,
        error: None,
    };
    let mut keys = keys.peekable();
    while keys.peek().is_some() {
        let mut group: [&[u8]; GET_MANY_GROUP] = [&[]; GET_MANY_GROUP];
        let mut n = 0;
        for (slot, key) in group.iter_mut().zip(keys.by_ref()) {
            *slot = key;
            n += 1;
        }
        if !shard.db.get_many_into(&group[..n], out, &mut sink).await {
            break;
        }
    }
    match sink.error {
        Some(e) => Err((error_code(&e), e.to_string())),
        None => Ok(()),
    }
}

/// Writes one MGET value per key.
struct ValueSlots<'w> {
    writer: &'w mut ValuesWriter,
    slot: Option<ValueInPlace>,
    error: Option<ringkv_engine::Error>,
}

impl GetManySink for ValueSlots<'_> {
    fn begin(&mut self, _: usize, out: &mut Vec<u8>) {
        self.slot = Some(self.writer.begin_value(out));
    }

    fn end(&mut self, _: usize, out: &mut Vec<u8>, result: EngineResult<bool>) -> bool {
        let Some(slot) = self.slot.take() else {
            return false;
        };
        match result {
            Ok(found) => {
                finish_value_in_place(out, slot, found);
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}
