//! Property tests of the codec: round trips, tamper detection, stream reassembly, and
//! arbitrary bytes (R-C6.3).
#![allow(clippy::unwrap_used)]

mod strategies;

use proptest::prelude::*;
use strategies::message;
use ykt_proto::*;

const DEVICE: PhysicalId = PhysicalId([0xCA, 0xFE, 0x00, 0x01]);

fn pair(suite: Suite) -> (Session, Session) {
    let key = Key([0x5A; 16]);
    (
        Session::new(Role::Terminal, DEVICE, suite, &key),
        Session::new(Role::Host, DEVICE, suite, &key),
    )
}

fn suite() -> impl Strategy<Value = Suite> {
    prop_oneof![Just(Suite::Aes128), Just(Suite::Sm4)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // R-B11: a PIN block sealed by the terminal's session opens to the same PIN at the host's,
    // for the same card and nonce only; any 16 bytes open to a valid PIN or to nothing.
    #[test]
    fn pin_block_round_trip(
        suite in suite(),
        digits in "[0-9]{4,12}",
        card in 1u32..,
        nonce in any::<u32>(),
        junk in any::<[u8; 16]>(),
    ) {
        let (term, host) = pair(suite);
        let pin = Pin::new(&digits).unwrap();
        let block = term.seal_pin(card, nonce, &pin);
        prop_assert_eq!(host.open_pin(card, nonce, &block), Some(pin));
        prop_assert_eq!(host.open_pin(card, nonce.wrapping_add(1), &block), None);
        prop_assert_eq!(host.open_pin(card ^ 1, nonce, &block), None);
        if let Some(p) = host.open_pin(card, nonce, &junk) {
            prop_assert!(Pin::new(p.as_str()).is_some());
        }
    }

    // R-C6.3: every message survives encode → decode unchanged (body codec).
    #[test]
    fn body_round_trip(msg in message()) {
        let mut body = Vec::new();
        msg.encode_body(&mut body).unwrap();
        let (ty, response) = msg.kind();
        prop_assert_eq!(Message::decode(ty, response, &body).unwrap(), msg);
    }

    // R-C6.3: every message except sign-in survives seal → open over a session, in both
    // directions and both suites; the response echoes the request's sequence number.
    #[test]
    fn session_round_trip(msg in message(), suite in suite(), from_host in any::<bool>(), corr in any::<u32>()) {
        prop_assume!(msg.kind().0 != MsgType::SignIn);
        let (mut term, mut host) = pair(suite);
        let (tx, rx) = if from_host { (&mut host, &mut term) } else { (&mut term, &mut host) };
        let mut frame = Vec::new();
        let seq = tx.seal(&msg, corr, &mut frame).unwrap();
        prop_assert!(frame.len() <= MAX_FRAME_LEN);
        let opened = rx.open(&frame).unwrap();
        prop_assert_eq!(opened.message, msg);
        prop_assert_eq!(opened.header.seq, seq);
        prop_assert_eq!(opened.header.corr, corr);
        prop_assert_eq!(opened.header.from_host(), from_host);
    }

    // R-C6.3: flipping any single bit of a sealed frame makes it fail to open.
    #[test]
    fn any_bit_flip_is_rejected(msg in message(), suite in suite(), bit in any::<prop::sample::Index>()) {
        prop_assume!(msg.kind().0 != MsgType::SignIn);
        let (mut term, mut host) = pair(suite);
        let mut frame = Vec::new();
        term.seal(&msg, 0, &mut frame).unwrap();
        let bit = bit.index(frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(host.open(&frame).is_err());
    }

    // R-C6.3: a stream of frames cut into arbitrary chunks reassembles into the same frames.
    #[test]
    fn stream_reassembly(msgs in prop::collection::vec(message(), 1..6), cuts in prop::collection::vec(1usize..200, 1..40)) {
        let (mut term, _) = pair(Suite::Aes128);
        let mut stream = Vec::new();
        let mut frames = Vec::new();
        for m in msgs.iter().filter(|m| m.kind().0 != MsgType::SignIn) {
            let mut f = Vec::new();
            term.seal(m, 0, &mut f).unwrap();
            stream.extend_from_slice(&f);
            frames.push(f);
        }
        let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            i += 1;
            let (mut chunk, tail) = rest.split_at(n);
            rest = tail;
            while !chunk.is_empty() {
                if let Some(f) = decoder.decode(&mut chunk).unwrap() {
                    got.push(f.to_vec());
                }
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    // R-C6.3: arbitrary bytes never panic any decoder (same entry point as the fuzz target).
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        ykt_proto::fuzzing::frame_decode(&data);
    }

    // R-C6.3: arbitrary bodies of every type decode to a value or an error, never a panic,
    // and whatever decodes re-encodes to the same bytes (the layout is canonical).
    #[test]
    fn arbitrary_bodies(ty in prop::sample::select(MsgType::ALL.to_vec()), response in any::<bool>(),
                        body in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(msg) = Message::decode(ty, response, &body) {
            let mut again = Vec::new();
            msg.encode_body(&mut again).unwrap();
            prop_assert_eq!(again, body);
        }
    }

    // R-C6.3: a valid frame with random bytes spliced in never panics the fuzz entry point.
    #[test]
    fn mutated_frames_never_panic(msg in message(), at in any::<prop::sample::Index>(),
                                  junk in prop::collection::vec(any::<u8>(), 0..16)) {
        let mut frame = Vec::new();
        encode_frame(&mut frame, DEVICE, false, 1, 0, &msg, None).unwrap();
        let i = at.index(frame.len());
        let end = (i + junk.len()).min(frame.len());
        frame.splice(i..end, junk);
        ykt_proto::fuzzing::frame_decode(&frame);
    }
}

proptest! {
    // R-C6.3: whatever arrives, the stream decoder never holds more than its limit.
    #[test]
    fn decoder_buffer_stays_bounded(max in 27usize..300, data in prop::collection::vec(any::<u8>(), 0..4096),
                                    chunk in 1usize..64) {
        let mut d = FrameDecoder::new(max);
        for mut piece in data.chunks(chunk) {
            while !piece.is_empty() {
                match d.decode(&mut piece) {
                    Ok(Some(f)) => prop_assert!(f.len() <= max),
                    Ok(None) => {}
                    Err(_) => break,
                }
                prop_assert!(d.buffered() <= max);
            }
        }
    }
}

proptest! {
    // R-C6.3: replay window as a state machine. Frames delivered in any order, with repeats,
    // are accepted exactly when their number exceeds every number accepted before.
    #[test]
    fn replay_window_model(deliveries in prop::collection::vec(0usize..12, 1..40), suite in suite()) {
        let (mut term, mut host) = pair(suite);
        let frames: Vec<(u32, Vec<u8>)> = (0..12)
            .map(|i| {
                let mut f = Vec::new();
                let msg = Message::StatusQuery(StatusQuery);
                let seq = if i % 2 == 0 { term.seal(&msg, 0, &mut f) } else { term.seal(&msg, 7, &mut f) };
                (seq.unwrap(), f)
            })
            .collect();
        let mut highest = 0u32;
        for i in deliveries {
            let (seq, frame) = &frames[i];
            let result = host.open(frame);
            if *seq > highest {
                prop_assert!(result.is_ok());
                highest = *seq;
            } else {
                prop_assert_eq!(result.unwrap_err(), ProtoError::Replay { got: *seq, last: highest });
            }
            prop_assert_eq!(host.last_received(), highest);
        }
    }
}
