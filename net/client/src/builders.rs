//! In-place frame builders on a [`Connection`]'s send buffer: [`BatchBuilder`] (BATCH) and
//! [`MGetBuilder`] (MGET), wrapping the codec's writers.
//!
//! Each op is checked (key and value bounds) before it is appended, and `finish` refuses a
//! frame over the server's maximum size or count. A builder that is dropped unfinished, or
//! whose frame is refused, truncates the send buffer back to where the frame began, so the
//! buffer only ever holds whole frames. Made by [`Connection::begin_batch`] and
//! [`Connection::begin_mget`].

use crate::connection::Connection;
use crate::error::ClientError;
use crate::routing::{check_frame, check_key, check_value};
use ringkv_proto::request::{BATCH_OPS_MAX, MGET_KEYS_MAX};
use ringkv_proto::{BatchWriter, MGetWriter};

/// A BATCH frame being built in a [`Connection`]'s send buffer.
#[derive(Debug)]
pub struct BatchBuilder<'c> {
    conn: &'c mut Connection,
    writer: Option<BatchWriter>,
    start: usize,
    id: u64,
}

impl<'c> BatchBuilder<'c> {
    pub(crate) fn new(
        conn: &'c mut Connection,
        writer: BatchWriter,
        start: usize,
        id: u64,
    ) -> Self {
        Self {
            conn,
            writer: Some(writer),
            start,
            id,
        }
    }

    /// Appends a put (the key and value are checked first).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        check_value(value)?;
        if let Some(writer) = self.writer.as_mut() {
            writer.put(&mut self.conn.send, key, value);
        }
        Ok(())
    }

    /// Appends a delete.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        if let Some(writer) = self.writer.as_mut() {
            writer.delete(&mut self.conn.send, key);
        }
        Ok(())
    }

    /// Operations appended so far.
    pub fn len(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.count() as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the frame takes so far.
    pub fn frame_bytes(&self) -> usize {
        self.conn.send.len() - self.start
    }

    /// The frame's request id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Completes the frame; returns its request id. A frame over the server's maximum size
    /// or operation count is removed and refused.
    pub fn finish(mut self) -> Result<u64, ClientError> {
        let Some(writer) = self.writer.take() else {
            return Err(ClientError::Closed);
        };
        let checked = check_frame("BATCH", self.frame_bytes(), self.conn.hello.max_frame_bytes)
            .and_then(|()| check_count("BATCH", writer.count(), BATCH_OPS_MAX));
        if let Err(e) = checked {
            self.conn.send.truncate(self.start);
            return Err(e);
        }
        writer.finish(&mut self.conn.send);
        Ok(self.id)
    }
}

impl Drop for BatchBuilder<'_> {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.conn.send.truncate(self.start);
        }
    }
}

/// An MGET frame being built in a [`Connection`]'s send buffer.
#[derive(Debug)]
pub struct MGetBuilder<'c> {
    conn: &'c mut Connection,
    writer: Option<MGetWriter>,
    start: usize,
    id: u64,
}

impl<'c> MGetBuilder<'c> {
    pub(crate) fn new(conn: &'c mut Connection, writer: MGetWriter, start: usize, id: u64) -> Self {
        Self {
            conn,
            writer: Some(writer),
            start,
            id,
        }
    }

    /// Appends a key.
    pub fn key(&mut self, key: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        if let Some(writer) = self.writer.as_mut() {
            writer.key(&mut self.conn.send, key);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.count() as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes the frame; returns its request id (refused if over the server's bounds).
    pub fn finish(mut self) -> Result<u64, ClientError> {
        let Some(writer) = self.writer.take() else {
            return Err(ClientError::Closed);
        };
        let bytes = self.conn.send.len() - self.start;
        let checked = check_frame("MGET", bytes, self.conn.hello.max_frame_bytes)
            .and_then(|()| check_count("MGET", writer.count(), MGET_KEYS_MAX));
        if let Err(e) = checked {
            self.conn.send.truncate(self.start);
            return Err(e);
        }
        writer.finish(&mut self.conn.send);
        Ok(self.id)
    }
}

impl Drop for MGetBuilder<'_> {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.conn.send.truncate(self.start);
        }
    }
}

fn check_count(op: &str, count: u32, max: u32) -> Result<(), ClientError> {
    if count > max {
        return Err(ClientError::InvalidArgument(format!(
            "{op} of {count} entries exceeds the maximum of {max}"
        )));
    }
    Ok(())
}
