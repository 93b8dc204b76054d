//! Decode + MAC verification of a typical online-debit request (74 bytes), per suite.
//! `CARGO_TARGET_DIR=/work/target-proto cargo bench -p ykt-proto --bench decode_verify`
#![allow(clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ykt_proto::test_vectors::{DEVICE, SESSION_KEY, debit_request};
use ykt_proto::*;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("debit_request");
    group.throughput(Throughput::Elements(1));
    for (name, suite) in [("aes128_cmac", Suite::Aes128), ("sm4_cmac", Suite::Sm4)] {
        let mut term = Session::new(Role::Terminal, DEVICE, suite, &SESSION_KEY);
        let host = Session::new(Role::Host, DEVICE, suite, &SESSION_KEY);
        let mut frame = Vec::new();
        term.seal(&Message::DebitRequest(debit_request()), 0, &mut frame)
            .unwrap();

        // The whole receive path: stream reassembly, envelope, MAC, replay window, body.
        group.bench_function(format!("{name}/decoder+open"), |b| {
            let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
            b.iter_batched_ref(
                || host.clone(),
                |session| {
                    let mut input = black_box(&frame[..]);
                    let f = decoder.decode(&mut input).unwrap().unwrap();
                    black_box(session.open(f).unwrap())
                },
                BatchSize::SmallInput,
            )
        });
        // Parse, verify and decode without the session bookkeeping.
        let mac = MacKey::new(suite, &SESSION_KEY);
        group.bench_function(format!("{name}/parse+verify+decode"), |b| {
            b.iter(|| {
                let raw = RawFrame::parse(black_box(&frame)).unwrap();
                raw.verify(&mac).unwrap();
                black_box(raw.message().unwrap())
            })
        });
        // The two halves, to see where the time goes.
        group.bench_function(format!("{name}/mac_only"), |b| {
            b.iter(|| black_box(mac.tag(black_box(&frame[..frame.len() - 8]))))
        });
        if suite == Suite::Aes128 {
            group.bench_function("decode_only", |b| {
                b.iter(|| {
                    black_box(
                        RawFrame::parse(black_box(&frame))
                            .unwrap()
                            .message()
                            .unwrap(),
                    )
                })
            });
        }
    }
    group.finish();

    // R-F4.21: a 1,000,000-card blacklist as 64 bitmap segments, sealed by the host and
    // opened by the terminal (codec and MAC cost of a bulk initialisation, no I/O).
    let mut bulk = c.benchmark_group("bulk_blacklist_1m_cards");
    bulk.sample_size(10);
    let segments: Vec<Segment> = (0..MAX_SEGMENTS)
        .map(|s| {
            let mut seg = Segment::empty();
            for n in (0..CARDS_PER_SEGMENT).step_by(16) {
                if s > 0 || n > 0 {
                    seg.insert(n);
                }
            }
            seg
        })
        .collect();
    for (name, suite) in [("aes128_cmac", Suite::Aes128), ("sm4_cmac", Suite::Sm4)] {
        bulk.bench_function(name, |b| {
            b.iter(|| {
                let mut host = Session::new(Role::Host, DEVICE, suite, &SESSION_KEY);
                let mut term = Session::new(Role::Terminal, DEVICE, suite, &SESSION_KEY);
                let mut frame = Vec::with_capacity(MAX_FRAME_LEN);
                for (i, seg) in segments.iter().enumerate() {
                    frame.clear();
                    let msg = Message::BlacklistBulkResponse(BlacklistBulkResponse {
                        code: ReturnCode::SUCCESS,
                        info: InfoCode::NONE,
                        version: 1,
                        segment: i as u16,
                        segments: MAX_SEGMENTS,
                        bitmap: Some(seg.clone()),
                    });
                    host.seal(&msg, 0, &mut frame).unwrap();
                    black_box(term.open(&frame).unwrap());
                }
            })
        });
    }
    bulk.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
