//! The worked examples of docs/protocol.md ("Worked examples"), byte for byte: if an encoder
//! changes, this test fails until the document is corrected with it.

use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_value, opcode, slot_of, BatchWriter,
    ClientHello, ErrorCode, Request, Response, ServerHello, MAX_FRAME_BYTES_DEFAULT,
};

/// Parses the document's hex notation: bytes separated by spaces, `|` between fields.
fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .filter(|token| *token != "|")
        .map(|token| u8::from_str_radix(token, 16).unwrap())
        .collect()
}

#[test]
fn handshake() {
    assert_eq!(
        ClientHello { version: 1 }.encode().to_vec(),
        hex("52 4b 56 43 | 01 00 | 00 00")
    );
    let hello = ServerHello {
        version: 1,
        status: ErrorCode::OK,
        max_frame_bytes: MAX_FRAME_BYTES_DEFAULT,
        shard: 2,
        shard_count: 4,
    };
    assert_eq!(
        hello.encode().to_vec(),
        hex("52 4b 56 53 | 01 00 | 00 00 | 00 00 80 00 | 02 00 | 04 00")
    );
}

#[test]
fn put_and_its_response() {
    let mut out = Vec::new();
    Request::Put {
        key: b"k",
        value: b"v",
    }
    .encode(1, &mut out);
    assert_eq!(
        out,
        hex("08 00 00 00 | 01 00 00 00 00 00 00 00 | 03 | 00 | 00 00 | 01 00 6b | 01 00 00 00 76")
    );
    let mut out = Vec::new();
    encode_done(&mut out, 1, opcode::PUT);
    assert_eq!(
        out,
        hex("00 00 00 00 | 01 00 00 00 00 00 00 00 | 03 | 01 | 00 00")
    );
}

#[test]
fn get_and_not_found() {
    let mut out = Vec::new();
    Request::Get { key: b"k" }.encode(2, &mut out);
    assert_eq!(
        out,
        hex("03 00 00 00 | 02 00 00 00 00 00 00 00 | 02 | 00 | 00 00 | 01 00 6b")
    );
    let mut out = Vec::new();
    encode_value(&mut out, 2, None);
    assert_eq!(
        out,
        hex("01 00 00 00 | 02 00 00 00 00 00 00 00 | 02 | 01 | 00 00 | 00")
    );
    let mut out = Vec::new();
    encode_value(&mut out, 2, Some(b"v"));
    assert_eq!(
        out,
        hex("06 00 00 00 | 02 00 00 00 00 00 00 00 | 02 | 01 | 00 00 | 01 | 01 00 00 00 76")
    );
}

#[test]
fn batch_with_a_hash_tag() {
    assert_eq!(slot_of(b"{u1}a"), slot_of(b"u1"));
    assert_eq!(slot_of(b"{u1}b"), 76);
    let mut out = Vec::new();
    let mut batch = BatchWriter::begin(&mut out, 3);
    batch.put(&mut out, b"{u1}a", b"x");
    batch.delete(&mut out, b"{u1}b");
    batch.finish(&mut out);
    assert_eq!(
        out,
        hex(
            "19 00 00 00 | 03 00 00 00 00 00 00 00 | 05 | 00 | 00 00 | 02 00 00 00 \
             | 01 | 05 00 7b 75 31 7d 61 | 01 00 00 00 78 \
             | 02 | 05 00 7b 75 31 7d 62"
        )
    );
    let mut out = Vec::new();
    encode_batch_done(&mut out, 3, 2);
    assert_eq!(
        out,
        hex("04 00 00 00 | 03 00 00 00 00 00 00 00 | 05 | 01 | 00 00 | 02 00 00 00")
    );
}

#[test]
fn error_response() {
    let mut out = Vec::new();
    encode_error(
        &mut out,
        4,
        opcode::GET,
        ErrorCode::INVALID_ARGUMENT,
        "empty key",
    );
    assert_eq!(
        out,
        hex("0b 00 00 00 | 04 00 00 00 00 00 00 00 | 02 | 01 | 05 00 \
             | 09 00 65 6d 70 74 79 20 6b 65 79")
    );
    let decoder = ringkv_proto::FrameDecoder::new(MAX_FRAME_BYTES_DEFAULT);
    let ringkv_proto::Decoded::Frame(frame, _) = decoder.next(&out).unwrap() else {
        panic!("incomplete");
    };
    assert_eq!(
        Response::decode(&frame.header, frame.body),
        Ok(Response::Error {
            code: ErrorCode::INVALID_ARGUMENT,
            message: "empty key"
        })
    );
}

#[test]
fn slots() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(slot_of(b"123456789"), 643);
    assert_eq!(slot_of(b"k"), 2824);
    assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
}
