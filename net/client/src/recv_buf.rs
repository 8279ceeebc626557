//! [`RecvBuf`]: the receive side of one connection, turning a byte stream into frames in a
//! reused buffer.
//!
//! Bytes are read into `buf[end..]`; decoded frames are consumed from `start`. The buffer
//! starts small and grows only when a frame needs it, never beyond `max(initial,
//! max_frame_bytes)`: the [`FrameDecoder`] rejects a frame larger than the announced maximum
//! from its header alone, before its body is buffered. Unconsumed bytes are moved to the front
//! only when the next frame would not fit behind them. Nothing is allocated per frame.
//!
//! Callers: [`crate::Connection`] (the low-level blocking connection) and the reader thread of
//! each multiplexed connection of [`crate::Client`].

use ringkv_proto::{Decoded, FrameDecoder, Header, ProtoError, HEADER_BYTES};
use std::io::{self, Read};
use std::ops::Range;

/// Initial size of a receive buffer (smaller if the server's maximum frame is smaller).
pub(crate) const RECV_BUF_INITIAL_BYTES: usize = 64 << 10;

/// A bounded, reused receive buffer.
#[derive(Debug)]
pub(crate) struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes the next frame needs from `start` (at least a header).
    needed: usize,
    decoder: FrameDecoder,
}

impl RecvBuf {
    pub(crate) fn new(max_frame_bytes: u32) -> Self {
        let initial = RECV_BUF_INITIAL_BYTES.min(max_frame_bytes as usize);
        Self {
            buf: vec![0; initial.max(HEADER_BYTES)],
            start: 0,
            end: 0,
            needed: HEADER_BYTES,
            decoder: FrameDecoder::new(max_frame_bytes),
        }
    }

    /// The largest the buffer may grow.
    pub(crate) fn limit(&self) -> usize {
        (self.decoder.max_frame_bytes() as usize).max(self.buf.len())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes received and not yet consumed as frames.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Consumes the next whole frame, if one is buffered: its header and where its body lies
    /// (read it with [`RecvBuf::body`] before the next [`RecvBuf::fill`]).
    pub(crate) fn next_frame(&mut self) -> Result<Option<(Header, Range<usize>)>, ProtoError> {
        match self.decoder.next(&self.buf[self.start..self.end])? {
            Decoded::Frame(frame, used) => {
                let body_start = self.start + HEADER_BYTES;
                let body = body_start..body_start + frame.body.len();
                let header = frame.header;
                self.start += used;
                self.needed = HEADER_BYTES;
                if self.start == self.end {
                    // Nothing left: the next read starts at the front (the body stays readable
                    // until then, since reset moves no bytes).
                    self.start = 0;
                    self.end = 0;
                }
                Ok(Some((header, body)))
            }
            Decoded::Incomplete { needed } => {
                self.needed = needed;
                Ok(None)
            }
        }
    }

    /// The body of a frame returned by [`RecvBuf::next_frame`].
    pub(crate) fn body(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Makes room for the next frame and reads once from `source`. Returns the bytes read
    /// (0 at end of stream).
    pub(crate) fn fill(&mut self, source: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        if self.end == self.buf.len() {
            // Only reachable if a whole frame is buffered and was not consumed first.
            return Err(io::Error::other("receive buffer full"));
        }
        let n = source.read(&mut self.buf[self.end..])?;
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
        Ok(n)
    }

    /// Ensures `buf[start..]` can hold the next frame (`needed` bytes): compacts, and grows
    /// up to the limit if the frame is larger than the buffer.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.start >= self.needed && self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.needed || self.end == self.buf.len() {
            // `needed` never exceeds max_frame_bytes: the decoder refuses larger frames.
            let grown = self
                .needed
                .max(self.buf.len().saturating_mul(2))
                .min(self.limit());
            self.buf.resize(grown.max(self.needed), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_proto::response::encode_value;
    use ringkv_proto::{encode_pong, Response};

    /// Yields at most `chunk` bytes per read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.bytes.len());
            out[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn read_all(stream: &[u8], chunk: usize, max_frame: u32) -> (Vec<(u64, Vec<u8>)>, usize) {
        let mut rb = RecvBuf::new(max_frame);
        let mut source = Trickle {
            bytes: stream,
            chunk,
        };
        let mut out = Vec::new();
        let mut peak = rb.capacity();
        loop {
            while let Some((header, body)) = rb.next_frame().unwrap() {
                let response = Response::decode(&header, rb.body(body)).unwrap();
                let Response::Value(value) = response else {
                    panic!("unexpected {response:?}")
                };
                out.push((header.request_id, value.unwrap_or_default().to_vec()));
            }
            if rb.fill(&mut source).unwrap() == 0 {
                break;
            }
            peak = peak.max(rb.capacity());
            assert!(rb.capacity() <= rb.limit());
        }
        assert_eq!(rb.buffered(), 0);
        (out, peak)
    }

    #[test]
    fn frames_split_across_reads_come_out_whole_and_in_order() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for id in 0..50u64 {
            let value = vec![id as u8; (id as usize * 37) % 3000];
            encode_value(&mut stream, id, Some(&value));
            expected.push((id, value));
        }
        for chunk in [1, 7, 16, 100, 4096, usize::MAX] {
            let (got, _) = read_all(&stream, chunk, 64 << 10);
            assert_eq!(got, expected, "chunk {chunk}");
        }
    }

    #[test]
    fn buffer_grows_for_a_large_frame_but_stays_within_the_maximum() {
        let max_frame = 1 << 20;
        let mut stream = Vec::new();
        let big = vec![7u8; (max_frame as usize) - 64];
        encode_value(&mut stream, 1, Some(&big));
        encode_value(&mut stream, 2, Some(b"small"));
        let (got, peak) = read_all(&stream, 10_000, max_frame);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, big);
        assert!(peak > RECV_BUF_INITIAL_BYTES);
        assert!(peak <= max_frame as usize, "peak {peak}");
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header() {
        let mut stream = Vec::new();
        encode_pong(&mut stream, 9, &[0; 200]);
        let mut rb = RecvBuf::new(128);
        let mut source = Trickle {
            bytes: &stream,
            chunk: usize::MAX,
        };
        rb.fill(&mut source).unwrap();
        assert!(matches!(
            rb.next_frame(),
            Err(ProtoError::FrameTooLarge { max: 128, .. })
        ));
        assert!(rb.capacity() <= 128);
    }
}
