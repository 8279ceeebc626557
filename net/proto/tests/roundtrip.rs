//! Property tests of the wire codec as a whole (docs/protocol.md).
//!
//! - Every request and response the public encoders can build decodes, through
//!   [`FrameDecoder`] and [`Request::decode`] / [`Response::decode`], back to what was encoded;
//!   re-encoding a decoded request gives the same bytes.
//! - A stream of frames cut at arbitrary points and fed to the decoder piece by piece yields the
//!   same frames.
//! - Hostile input gives an error value, never a panic: arbitrary bytes, mutated frames,
//!   truncated bodies, trailing bytes, frames over the size limit (rejected from the header).
//!
//! The tests compare against plain owned models (`model::Req`, `model::Resp`) built by the
//! strategies in `model::strategy`, so an encoder and a decoder that are wrong in the same way
//! still disagree with the model.

mod model;

use model::strategy::{any_opcode, message, request, response};
use model::{cut_at_char_boundary, decode_body, decode_msg, single_frame, Msg, Req, Resp};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use ringkv_proto::frame::{
    FLAG_RESPONSE, MAX_FRAME_BYTES_LIMIT, MAX_FRAME_BYTES_MIN, SERVER_HELLO_BYTES,
};
use ringkv_proto::request::{
    BATCH_OPS_MAX, MGET_KEYS_MAX, PING_PAYLOAD_MAX, SCAN_LIMIT_MAX, SCAN_MODE_CURSOR,
    SCAN_MODE_SLOT,
};
use ringkv_proto::response::{ERROR_MESSAGE_MAX, STAT_NAME_MAX};
use ringkv_proto::{
    encode_stats, opcode, ClientHello, Decoded, ErrorCode, Frame, FrameDecoder, Header, ProtoError,
    Request, Response, ServerHello, ShardStats, CLIENT_HELLO_BYTES, HEADER_BYTES, KEY_BYTES_MAX,
    MAX_FRAME_BYTES_DEFAULT, SLOT_COUNT,
};

// ---------------------------------------------------------------------------------------------
// Round trips

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip(request in request(), request_id in any::<u64>()) {
        let mut out = Vec::new();
        request.encode(request_id, &mut out);

        let frame = single_frame(&out);
        prop_assert_eq!(frame.header.body_len as usize, out.len() - HEADER_BYTES);
        prop_assert_eq!(frame.header.request_id, request_id);
        prop_assert_eq!(frame.header.opcode, request.opcode());
        prop_assert_eq!(frame.header.flags, 0);
        prop_assert_eq!(frame.header.status, ErrorCode::OK);
        prop_assert!(!frame.header.is_response());

        let decoded = Request::decode(frame.header.opcode, frame.body).unwrap();
        prop_assert_eq!(decoded.opcode(), request.opcode());
        prop_assert_eq!(Req::from_decoded(&decoded), request);

        // Re-encoding the borrowed view gives the same bytes.
        let mut again = Vec::new();
        decoded.encode(request_id, &mut again);
        prop_assert_eq!(&again, &out);

        // A request is not a response.
        prop_assert_eq!(Response::decode(&frame.header, frame.body), Err(ProtoError::Direction));
    }

    #[test]
    fn responses_round_trip(response in response(), request_id in any::<u64>()) {
        let mut out = Vec::new();
        response.encode(request_id, &mut out);

        let frame = single_frame(&out);
        prop_assert_eq!(frame.header.body_len as usize, out.len() - HEADER_BYTES);
        prop_assert_eq!(frame.header.request_id, request_id);
        prop_assert_eq!(frame.header.opcode, response.opcode());
        prop_assert_eq!(frame.header.flags, FLAG_RESPONSE);
        prop_assert_eq!(frame.header.status, response.status());
        prop_assert!(frame.header.is_response());

        let decoded = Response::decode(&frame.header, frame.body).unwrap();
        prop_assert_eq!(Resp::from_decoded(frame.header.opcode, &decoded), response.expected());
        if let Resp::Error { message, .. } = &response {
            // The message is cut only when it has to be, and never by more than one char.
            prop_assert!(out.len() - HEADER_BYTES - 2 <= ERROR_MESSAGE_MAX);
            if message.len() > ERROR_MESSAGE_MAX {
                prop_assert!(out.len() - HEADER_BYTES - 2 > ERROR_MESSAGE_MAX - 4);
            }
        }
    }

    #[test]
    fn handshake_round_trips(
        version in any::<u16>(),
        status in any::<u16>(),
        max_frame_bytes in MAX_FRAME_BYTES_MIN..=MAX_FRAME_BYTES_LIMIT,
        any_max in any::<u32>(),
        shard in any::<u16>(),
        shard_count in any::<u16>(),
    ) {
        let client = ClientHello { version };
        let bytes = client.encode();
        prop_assert_eq!(&bytes[..4], b"RKVC");
        prop_assert_eq!(ClientHello::decode(&bytes), Ok(client));

        let ok = ServerHello { version, status: ErrorCode::OK, max_frame_bytes, shard, shard_count };
        prop_assert_eq!(ServerHello::decode(&ok.encode()), Ok(ok));

        // A refusal carries no usable limit, so the limit is not checked.
        let status = ErrorCode(status.max(1));
        let refused = ServerHello { version, status, max_frame_bytes: any_max, shard, shard_count };
        prop_assert_eq!(ServerHello::decode(&refused.encode()), Ok(refused));

        // An OK hello with a limit outside 64 KiB..=64 MiB is rejected.
        let in_range = (MAX_FRAME_BYTES_MIN..=MAX_FRAME_BYTES_LIMIT).contains(&any_max);
        let odd = ServerHello { max_frame_bytes: any_max, ..ok };
        prop_assert_eq!(ServerHello::decode(&odd.encode()).is_ok(), in_range);
    }

    #[test]
    fn arbitrary_hellos_never_panic(client in any::<[u8; CLIENT_HELLO_BYTES]>(),
                                    server in any::<[u8; SERVER_HELLO_BYTES]>()) {
        if let Ok(hello) = ClientHello::decode(&client) {
            prop_assert_eq!(hello.encode(), client);
        }
        if let Ok(hello) = ServerHello::decode(&server) {
            prop_assert_eq!(hello.encode(), server);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streams

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Frames concatenated in one stream and delivered in arbitrary pieces decode to the same
    /// frames, in order, each taking exactly its own bytes.
    #[test]
    fn split_stream_decodes_to_the_same_frames(
        messages in vec((message(), any::<u64>()), 1..12),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let mut stream = Vec::new();
        let mut frames = Vec::new();
        for (message, request_id) in &messages {
            let mut one = Vec::new();
            message.encode(*request_id, &mut one);
            stream.extend_from_slice(&one);
            frames.push(one);
        }

        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();

        let decoder = FrameDecoder::new(MAX_FRAME_BYTES_DEFAULT);
        let mut buffer = Vec::new();
        let mut fed = 0;
        let mut seen = 0;
        for cut in cuts {
            buffer.extend_from_slice(&stream[fed..cut]);
            fed = cut;
            loop {
                match decoder.next(&buffer).unwrap() {
                    Decoded::Frame(frame, used) => {
                        prop_assert!(seen < frames.len(), "more frames than were sent");
                        prop_assert_eq!(&buffer[..used], &frames[seen][..]);
                        let (message, request_id) = &messages[seen];
                        prop_assert_eq!(frame.header.request_id, *request_id);
                        prop_assert_eq!(decode_msg(&frame).unwrap(), message.expected());
                        buffer.drain(..used);
                        seen += 1;
                    }
                    Decoded::Incomplete { needed } => {
                        prop_assert!(needed > buffer.len());
                        if buffer.len() >= HEADER_BYTES {
                            // Once the header is in, `needed` is the whole frame.
                            prop_assert_eq!(needed, frames[seen].len());
                        } else {
                            prop_assert_eq!(needed, HEADER_BYTES);
                        }
                        break;
                    }
                }
            }
        }
        prop_assert_eq!(seen, frames.len());
        prop_assert!(buffer.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/// Runs every decoder over `bytes` as a stream; returns how many frames it found.
fn decode_everything(decoder: FrameDecoder, bytes: &[u8]) -> usize {
    if let Ok(hello) = <&[u8; CLIENT_HELLO_BYTES]>::try_from(&bytes[..bytes.len().min(8)]) {
        let _ = ClientHello::decode(hello);
    }
    if let Ok(hello) = <&[u8; SERVER_HELLO_BYTES]>::try_from(&bytes[..bytes.len().min(16)]) {
        let _ = ServerHello::decode(hello);
    }
    let mut rest = bytes;
    let mut frames = 0;
    loop {
        match decoder.next(rest) {
            Ok(Decoded::Frame(frame, used)) => {
                assert!(used >= HEADER_BYTES && used <= rest.len());
                assert_eq!(used, HEADER_BYTES + frame.header.body_len as usize);
                assert!(used <= decoder.max_frame_bytes() as usize);
                exercise(&frame);
                rest = &rest[used..];
                frames += 1;
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed > rest.len());
                return frames;
            }
            Err(_) => return frames,
        }
    }
}

/// Decodes a frame both ways and, when that succeeds, walks every view to its end.
fn exercise(frame: &Frame<'_>) {
    if let Ok(request) = Request::decode(frame.header.opcode, frame.body) {
        Req::from_decoded(&request);
    }
    let as_response = Header {
        flags: frame.header.flags | FLAG_RESPONSE,
        ..frame.header
    };
    if let Ok(response) = Response::decode(&as_response, frame.body) {
        Resp::from_decoded(frame.header.opcode, &response);
    }
    let _ = Response::decode(&frame.header, frame.body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..2048),
        max_frame_bytes in prop_oneof![0u32..64, 64u32..=4096, Just(MAX_FRAME_BYTES_DEFAULT)],
    ) {
        decode_everything(FrameDecoder::new(max_frame_bytes), &bytes);
    }

    /// Random bodies behind a well-formed header reach far deeper than random headers do.
    #[test]
    fn arbitrary_bodies_never_panic(
        op in any_opcode(),
        flags in any::<u8>(),
        status in prop_oneof![3 => Just(0u16), 1 => any::<u16>()],
        request_id in any::<u64>(),
        body in vec(any::<u8>(), 0..1024),
    ) {
        let header = Header { body_len: body.len() as u32, request_id, opcode: op, flags, status: ErrorCode(status) };
        let mut frame = Vec::new();
        header.encode_into(&mut frame);
        frame.extend_from_slice(&body);
        prop_assert_eq!(decode_everything(FrameDecoder::new(MAX_FRAME_BYTES_DEFAULT), &frame), 1);
    }

    /// Valid frames with a few bytes overwritten: decoding may succeed or fail, never panic.
    #[test]
    fn mutated_frames_never_panic(
        message in message(),
        edits in vec((any::<Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = Vec::new();
        message.encode(7, &mut bytes);
        for (at, byte) in edits {
            // Keep the header's body_len so that the body, not the framing, is what gets fuzzed.
            let at = 4 + at.index(bytes.len() - 4);
            bytes[at] = byte;
        }
        decode_everything(FrameDecoder::new(MAX_FRAME_BYTES_LIMIT), &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A frame over the limit is refused as soon as its 16 header bytes are in, whatever
    /// follows; a frame of exactly the limit is accepted.
    #[test]
    fn oversized_frames_are_rejected_from_the_header(
        (max_frame_bytes, body_len) in (MAX_FRAME_BYTES_MIN..=MAX_FRAME_BYTES_LIMIT).prop_flat_map(
            |max| (Just(max), (max - HEADER_BYTES as u32 + 1)..=u32::MAX)),
        request_id in any::<u64>(),
        op in any::<u8>(),
        flags in any::<u8>(),
        extra in vec(any::<u8>(), 0..64),
    ) {
        let decoder = FrameDecoder::new(max_frame_bytes);
        let mut bytes = Vec::new();
        Header { body_len, request_id, opcode: op, flags, status: ErrorCode::OK }.encode_into(&mut bytes);
        let expected = ProtoError::FrameTooLarge {
            len: HEADER_BYTES as u64 + u64::from(body_len),
            max: max_frame_bytes,
        };
        prop_assert_eq!(decoder.next(&bytes), Err(expected.clone()));
        prop_assert_eq!(expected.code(), ErrorCode::FRAME_TOO_LARGE);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decoder.next(&bytes), Err(expected));
        // Fewer than 16 bytes say nothing yet.
        prop_assert_eq!(
            decoder.next(&bytes[..HEADER_BYTES - 1]),
            Ok(Decoded::Incomplete { needed: HEADER_BYTES })
        );

        let mut at_limit = Vec::new();
        let body_len = max_frame_bytes - HEADER_BYTES as u32;
        Header { body_len, request_id, opcode: op, flags, status: ErrorCode::OK }.encode_into(&mut at_limit);
        prop_assert_eq!(
            decoder.next(&at_limit),
            Ok(Decoded::Incomplete { needed: max_frame_bytes as usize })
        );
    }

    /// Cutting any number of bytes off a valid body is an error (PING excepted: its payload is
    /// the whole body, so every prefix is a shorter payload); a cut frame is incomplete.
    #[test]
    fn truncated_bodies_are_errors(message in message(), cut in any::<Index>()) {
        let mut bytes = Vec::new();
        message.encode(1, &mut bytes);
        let frame = single_frame(&bytes);
        if !frame.body.is_empty() {
            let keep = cut.index(frame.body.len());
            let result = decode_body(&frame.header, &frame.body[..keep]);
            if message.is_ping() {
                prop_assert!(result.is_ok());
            } else {
                prop_assert!(result.is_err(), "{} of {} body bytes decoded: {:?}",
                    keep, frame.body.len(), result);
            }
        }
        let keep = cut.index(bytes.len());
        let cut_frame = FrameDecoder::new(MAX_FRAME_BYTES_LIMIT).next(&bytes[..keep]);
        let incomplete = matches!(cut_frame, Ok(Decoded::Incomplete { .. }));
        prop_assert!(incomplete, "a cut frame decoded: {:?}", cut_frame);
    }

    /// Bytes after a complete body are refused (PING excepted: they extend the payload).
    #[test]
    fn trailing_bytes_are_rejected(message in message(), extra in vec(any::<u8>(), 1..32)) {
        let mut bytes = Vec::new();
        message.encode(1, &mut bytes);
        let body_len = bytes.len() - HEADER_BYTES + extra.len();
        bytes.extend_from_slice(&extra);
        bytes[..4].copy_from_slice(&(body_len as u32).to_le_bytes());

        let frame = single_frame(&bytes);
        let result = decode_msg(&frame);
        if message.is_ping() {
            let payload = frame.body.len() <= PING_PAYLOAD_MAX;
            prop_assert_eq!(result.is_ok(), payload || matches!(message, Msg::Resp(_)));
        } else {
            prop_assert!(
                matches!(result, Err(ProtoError::TrailingBytes { count, .. }) if count == extra.len()),
                "got {:?}", result
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Limits, one by one

fn request_body(op: u8, body: &[u8]) -> Result<Req, ProtoError> {
    Request::decode(op, body).map(|r| Req::from_decoded(&r))
}

fn short(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

#[test]
fn keys_must_be_one_to_key_bytes_max_long() {
    assert!(matches!(
        request_body(opcode::GET, &short(b"")),
        Err(ProtoError::EmptyKey { .. })
    ));
    let longest = vec![b'k'; KEY_BYTES_MAX];
    assert_eq!(
        request_body(opcode::GET, &short(&longest)),
        Ok(Req::Get(longest))
    );
    let too_long = short(&vec![b'k'; KEY_BYTES_MAX + 1]);
    for op in [opcode::GET, opcode::DELETE] {
        let err = request_body(op, &too_long).unwrap_err();
        assert!(matches!(err, ProtoError::TooLong { .. }), "{err:?}");
        assert_eq!(err.code(), ErrorCode::INVALID_ARGUMENT);
    }
}

#[test]
fn counts_and_limits_are_bounded() {
    let mut body = (BATCH_OPS_MAX + 1).to_le_bytes().to_vec();
    body.extend_from_slice(&[2, 1, 0, b'k']);
    assert!(matches!(
        request_body(opcode::BATCH, &body),
        Err(ProtoError::TooLong { .. })
    ));
    let body = (MGET_KEYS_MAX + 1).to_le_bytes();
    assert!(matches!(
        request_body(opcode::MGET, &body),
        Err(ProtoError::TooLong { .. })
    ));
    for limit in [0, SCAN_LIMIT_MAX + 1] {
        let mut body = vec![SCAN_MODE_CURSOR, 0, 0];
        body.extend_from_slice(&limit.to_le_bytes());
        assert!(matches!(
            request_body(opcode::SCAN, &body),
            Err(ProtoError::InvalidField { .. })
        ));
    }
    let mut body = vec![SCAN_MODE_SLOT];
    body.extend_from_slice(&SLOT_COUNT.to_le_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
    assert!(matches!(
        request_body(opcode::SCAN, &body),
        Err(ProtoError::InvalidField { .. })
    ));
    let payload = vec![0u8; PING_PAYLOAD_MAX + 1];
    assert!(matches!(
        request_body(opcode::PING, &payload),
        Err(ProtoError::TooLong { .. })
    ));
    assert_eq!(
        request_body(0x7f, &[]),
        Err(ProtoError::UnknownOpcode(0x7f))
    );
    assert_eq!(
        ProtoError::UnknownOpcode(0x7f).code(),
        ErrorCode::UNKNOWN_OPCODE
    );
}

/// Regression: `encode_stats` cut names longer than STAT_NAME_MAX at a byte count, which could
/// split a UTF-8 character and make the frame undecodable (BadUtf8). Names are now cut at the
/// last character boundary that fits.
#[test]
fn stats_names_longer_than_the_limit_are_cut_at_a_char_boundary() {
    for name in [
        "é".repeat(200),
        "x".repeat(300),
        format!("{}€", "a".repeat(253)),
    ] {
        let shards = vec![ShardStats {
            shard: 3,
            values: vec![(name.clone(), 42)],
        }];
        let mut out = Vec::new();
        encode_stats(&mut out, 9, &shards);
        let frame = single_frame(&out);
        let decoded = Response::decode(&frame.header, frame.body).unwrap();
        let expected = vec![ShardStats {
            shard: 3,
            values: vec![(cut_at_char_boundary(&name, STAT_NAME_MAX).to_string(), 42)],
        }];
        assert_eq!(decoded, Response::Stats(expected));
    }
}

proptest! {
    /// Values appended in place (the server copies an engine value straight into the
    /// response) encode exactly as the value-taking encoders do, for GET and inside MGET,
    /// found or not, whatever was appended before an absent marker replaced it.
    #[test]
    fn values_in_place_encode_like_whole_values(
        id in any::<u64>(),
        values in vec(proptest::option::of(vec(any::<u8>(), 0..300)), 0..8),
        junk in vec(any::<u8>(), 0..20),
    ) {
        for value in &values {
            let mut whole = Vec::new();
            ringkv_proto::encode_value(&mut whole, id, value.as_deref());
            let mut in_place = Vec::new();
            let started = ringkv_proto::begin_get_in_place(&mut in_place, id);
            in_place.extend_from_slice(value.as_deref().unwrap_or(&junk));
            ringkv_proto::finish_get_in_place(&mut in_place, started, value.is_some());
            prop_assert_eq!(&in_place, &whole);
        }
        let mut whole = Vec::new();
        let mut w = ringkv_proto::ValuesWriter::begin(&mut whole, id);
        for value in &values {
            w.value(&mut whole, value.as_deref());
        }
        w.finish(&mut whole);
        let mut in_place = Vec::new();
        let mut w = ringkv_proto::ValuesWriter::begin(&mut in_place, id);
        for value in &values {
            let slot = w.begin_value(&mut in_place);
            in_place.extend_from_slice(value.as_deref().unwrap_or(&junk));
            ringkv_proto::finish_value_in_place(&mut in_place, slot, value.is_some());
        }
        w.finish(&mut in_place);
        prop_assert_eq!(in_place, whole);
    }
}
