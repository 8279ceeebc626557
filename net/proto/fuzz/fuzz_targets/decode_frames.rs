//! Fuzz target: every decoder of ringkv-proto over arbitrary bytes.
//!
//! The input is read as a connection's byte stream: its first 8 and 16 bytes as a client and
//! a server hello, then the whole input as back-to-back frames. Each frame is decoded as a
//! request and as a response. Beyond "never panics", it checks what the decoders promise:
//! a frame takes exactly `16 + body_len` bytes and never more than the limit, the views of a
//! decoded body yield exactly `len()` items, and re-encoding a decoded message gives back the
//! same body (the encoding is canonical).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_proto::frame::FLAG_RESPONSE;
use ringkv_proto::response::{ERROR_MESSAGE_MAX, STAT_NAME_MAX};
use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_pong, encode_stats, encode_value, BatchOp,
    BatchWriter, ClientHello, Decoded, Frame, FrameDecoder, Header, MGetWriter, Request, Response,
    ScanWriter, ServerHello, ValuesWriter, HEADER_BYTES, MAX_FRAME_BYTES_DEFAULT,
};

fuzz_target!(|data: &[u8]| {
    if let Some(hello) = data.first_chunk() {
        if let Ok(decoded) = ClientHello::decode(hello) {
            assert_eq!(&decoded.encode(), hello);
        }
    }
    if let Some(hello) = data.first_chunk() {
        if let Ok(decoded) = ServerHello::decode(hello) {
            assert_eq!(&decoded.encode(), hello);
        }
    }

    let decoder = FrameDecoder::new(MAX_FRAME_BYTES_DEFAULT);
    let mut rest = data;
    loop {
        match decoder.next(rest) {
            Ok(Decoded::Frame(frame, used)) => {
                assert_eq!(used, HEADER_BYTES + frame.header.body_len as usize);
                assert!(used <= rest.len());
                assert!(used <= MAX_FRAME_BYTES_DEFAULT as usize);
                check_request(&frame);
                check_response(&frame);
                rest = &rest[used..];
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed > rest.len());
                break;
            }
            Err(_) => break,
        }
    }
});

/// The body of a frame as re-encoded from a decoded message.
fn body_of(encoded: &[u8]) -> &[u8] {
    &encoded[HEADER_BYTES..]
}

fn check_request(frame: &Frame<'_>) {
    let Ok(request) = Request::decode(frame.header.opcode, frame.body) else {
        return;
    };
    let mut again = Vec::new();
    match request {
        Request::Batch(view) => {
            // Rebuild through the writer, op by op, not by copying the validated bytes.
            let mut writer = BatchWriter::begin(&mut again, frame.header.request_id);
            for op in view.iter() {
                match op {
                    BatchOp::Put { key, value } => writer.put(&mut again, key, value),
                    BatchOp::Delete { key } => writer.delete(&mut again, key),
                }
            }
            assert_eq!(writer.count() as usize, view.len());
            writer.finish(&mut again);
        }
        Request::MGet(view) => {
            let mut writer = MGetWriter::begin(&mut again, frame.header.request_id);
            for key in view.iter() {
                writer.key(&mut again, key);
            }
            assert_eq!(writer.count() as usize, view.len());
            writer.finish(&mut again);
        }
        other => other.encode(frame.header.request_id, &mut again),
    }
    assert_eq!(
        body_of(&again),
        frame.body,
        "request does not re-encode to its body"
    );
}

fn check_response(frame: &Frame<'_>) {
    // Decode as sent (the RESPONSE flag may be clear: then it must fail), and as a response.
    let as_sent = Response::decode(&frame.header, frame.body);
    if !frame.header.is_response() {
        assert!(as_sent.is_err());
    }
    let header = Header {
        flags: frame.header.flags | FLAG_RESPONSE,
        ..frame.header
    };
    let Ok(response) = Response::decode(&header, frame.body) else {
        return;
    };
    let id = header.request_id;
    let mut again = Vec::new();
    match &response {
        Response::Pong { payload } => encode_pong(&mut again, id, payload),
        Response::Value(value) => encode_value(&mut again, id, *value),
        Response::Done => encode_done(&mut again, id, header.opcode),
        Response::BatchDone { applied } => encode_batch_done(&mut again, id, *applied),
        Response::MGet(view) => {
            let mut writer = ValuesWriter::begin(&mut again, id);
            let mut count = 0;
            for value in view.iter() {
                writer.value(&mut again, value);
                count += 1;
            }
            assert_eq!(count, view.len());
            writer.finish(&mut again);
        }
        Response::Scan(view) => {
            let mut writer = ScanWriter::begin(&mut again, id);
            for (key, value) in view.iter() {
                writer.entry(&mut again, key, value);
            }
            assert_eq!(writer.count() as usize, view.len());
            writer.finish(&mut again, view.next);
        }
        Response::Topology(topology) => topology.encode(id, &mut again),
        Response::Stats(shards) => {
            for shard in shards {
                for (name, _) in &shard.values {
                    assert!(name.len() <= STAT_NAME_MAX);
                }
            }
            encode_stats(&mut again, id, shards)
        }
        Response::Error { code, message } => {
            if message.len() > ERROR_MESSAGE_MAX {
                // The encoder cuts long messages; the decoder accepts them.
                return;
            }
            encode_error(&mut again, id, header.opcode, *code, message)
        }
    }
    assert_eq!(
        body_of(&again),
        frame.body,
        "response does not re-encode to its body"
    );
}
