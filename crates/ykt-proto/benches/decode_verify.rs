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
}

criterion_group!(benches, bench);
criterion_main!(benches);
