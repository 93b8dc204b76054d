//! End to end: `ykt pos --headless --real-time` against a real `ykt serve --demo`: the
//! terminal's timers fire by themselves, also while a `wait` runs (`docs/pos-script.md`).
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

use serde_json::{Value, json};
use serve_support::Serve;
use support::{Pos, audit};

fn clock(pos: &mut Pos) -> String {
    pos.status()["clock"].as_str().unwrap().to_owned()
}

// issue 10.15, R-C6.2: the 签到成功 text (held 1.5 s) gives way to the idle screen by the core's
// own timer while a `wait` runs; `status.clock` is the terminal's clock now, also when no
// input reached the core in between.
#[test]
fn timers_fire_during_a_real_time_wait_and_status_reads_the_clock_now() {
    let s = Serve::start(None);
    let journal = s.dir.path().join("rt");
    let mut pos = Pos::start_with(&s.data(), "10000001", &journal, &["--real-time"]);
    pos.signed_in();
    pos.wait_screen("请输入金额");
    let before = clock(&mut pos);
    // Nothing reaches the core during this wait (the next heartbeat is a minute away).
    let r: Value =
        pos.send(json!({"cmd":"wait","for":"screen","text":"无此画面","timeout_ms":1_100}));
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("timed out")),
        "{r}"
    );
    let after = clock(&mut pos);
    assert!(
        after > before,
        "status.clock stood still: {before} → {after}"
    );
    pos.quit();
    let dir = s.stop();
    audit(&dir.path().join("data"), None);
}
