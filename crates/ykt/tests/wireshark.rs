//! tools/wireshark/ykt.lua (#16): the protocol's frames, written into a pcap by this test
//! (Ethernet/IPv4/TCP, one frame split across segments, several frames in one segment),
//! dissected by tshark: every frame is found, none is malformed, and the fields equal what
//! was sent. CI installs Debian's tshark (scripts/test).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ykt_proto::test_vectors;
use ykt_proto::{ReturnCode, Suite};

const HOST_PORT: u16 = 9000;
const TERMINAL_PORT: u16 = 40_001;

fn lua() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/wireshark/ykt.lua")
}

/// A frame of the given type and body with a zero MAC (the dissector shows the MAC; it does
/// not verify it).
fn frame(msg_type: u8, flags: u8, seq: u32, corr: u32, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(17 + body.len() + 8).unwrap();
    let mut f = len.to_be_bytes().to_vec();
    f.extend_from_slice(b"YK");
    f.extend_from_slice(&[1, msg_type, flags]);
    f.extend_from_slice(&test_vectors::DEVICE.0);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&corr.to_be_bytes());
    f.extend_from_slice(body);
    f.extend_from_slice(&[0xA5; 8]);
    f
}

const LOAD_AMOUNT: i64 = 5_000;
const WAITING: i64 = 2_500;

/// 0x08 and 0x09 (docs/loads.md), request and response.
fn load_frames() -> Vec<Vec<u8>> {
    let card = test_vectors::card().get().to_be_bytes();
    let mut load = vec![1];
    load.extend_from_slice(&card);
    load.push(1);
    load.extend_from_slice(&56u32.to_be_bytes());
    load.extend_from_slice(&12_345i64.to_be_bytes());
    load.extend_from_slice(&LOAD_AMOUNT.to_be_bytes());
    load.extend_from_slice(&3u16.to_be_bytes());
    load.push(1);
    load.extend_from_slice(&2048u32.to_be_bytes());
    load.extend_from_slice(&[0x20, 0x26, 0x03, 0x02, 0x11, 0x45, 0x30]);
    load.resize(72, 0);
    let mut loaded = vec![0, 0];
    loaded.extend_from_slice(&2048u32.to_be_bytes());
    loaded.extend_from_slice(&card);
    loaded.extend_from_slice(&LOAD_AMOUNT.to_be_bytes());
    loaded.extend_from_slice(&17_345i64.to_be_bytes());
    loaded.extend_from_slice(&3u16.to_be_bytes());
    loaded.extend_from_slice(&[0; 4]);
    loaded.extend_from_slice(&17_345i64.to_be_bytes());
    loaded.extend_from_slice(&[0; 2]);
    assert_eq!(loaded.len(), 42);
    let mut waits = card.to_vec();
    waits.push(1);
    waits.extend_from_slice(&3u16.to_be_bytes());
    waits.extend_from_slice(&56u32.to_be_bytes());
    waits.extend_from_slice(&12_345i64.to_be_bytes());
    let mut waiting = vec![ReturnCode::CARD_SUBSIDY_SEQ_ABNORMAL.0, 2];
    waiting.extend_from_slice(&card);
    waiting.extend_from_slice(&WAITING.to_be_bytes());
    waiting.extend_from_slice(&1u16.to_be_bytes());
    waiting.extend_from_slice(&4u16.to_be_bytes());
    vec![
        frame(0x08, 0, 100, 0, &load),
        frame(0x08, 3, 200, 100, &loaded),
        frame(0x09, 0, 101, 0, &waits),
        frame(0x09, 3, 201, 101, &waiting),
    ]
}

/// A classic pcap of TCP segments between the terminal and the host.
struct Pcap {
    bytes: Vec<u8>,
    seq: [u32; 2],
}

impl Pcap {
    fn new() -> Pcap {
        let mut bytes = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65_535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        Pcap {
            bytes,
            seq: [1_000, 5_000],
        }
    }

    /// One segment; `from_host` picks the direction.
    fn segment(&mut self, from_host: bool, payload: &[u8]) {
        let (src, dst, sport, dport, dir) = if from_host {
            ([10, 0, 0, 1], [10, 0, 0, 2], HOST_PORT, TERMINAL_PORT, 1)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], TERMINAL_PORT, HOST_PORT, 0)
        };
        let mut p = vec![2, 0, 0, 0, 0, dst[3], 2, 0, 0, 0, 0, src[3], 0x08, 0x00];
        let total = u16::try_from(20 + 20 + payload.len()).unwrap();
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&ip);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&self.seq[dir].to_be_bytes());
        p.extend_from_slice(&self.seq[1 - dir].to_be_bytes());
        p.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        self.seq[dir] += u32::try_from(payload.len()).unwrap();
        let n = u32::try_from(self.bytes.len()).unwrap();
        self.bytes
            .extend_from_slice(&1_764_640_000u32.to_le_bytes());
        self.bytes.extend_from_slice(&n.to_le_bytes()); // distinct times
        let len = u32::try_from(p.len()).unwrap();
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&p);
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap()
}

fn sent_by_host(frame: &[u8]) -> bool {
    frame[6] & 2 == 2
}

/// Runs tshark over `pcap`; every value of each field in order, over all frames.
fn tshark(pcap: &Path, extra: &[&str], fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-X")
        .arg(format!("lua_script:{}", lua().display()))
        .arg("-r")
        .arg(pcap)
        .args(extra)
        .args([
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
            "-E",
            "separator=\t",
        ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!(
                "tshark not runnable ({e}): apt-get install tshark; dissector not checked here"
            );
            return None;
        }
        Err(e) => panic!("tshark is required in CI: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Lua: Error"), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut columns = vec![Vec::new(); fields.len()];
    for line in text.lines() {
        for (i, cell) in line.split('\t').enumerate() {
            columns[i].extend(cell.split('|').filter(|v| !v.is_empty()).map(str::to_owned));
        }
    }
    Some(columns)
}

fn number(v: &str) -> i64 {
    match v.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).unwrap(),
        None => v.parse().unwrap(),
    }
}

// #16 (dissector): every frame of the protocol's vectors and of 0x08/0x09 dissects, none is
// malformed, header, MAC and fields equal what was sent, codes show their Chinese texts.
#[test]
fn tshark_dissects_every_frame_as_sent() {
    let mut frames: Vec<Vec<u8>> = test_vectors::all(Suite::Aes128)
        .unwrap()
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    frames.extend(load_frames());
    frames.push(frame(
        0x7F,
        1,
        0,
        9,
        &[ReturnCode::FEP_KEY_ERROR.0, 0, 4, 1, 1],
    ));

    let mut pcap = Pcap::new();
    let mut i = 0;
    while i < frames.len() {
        let f = &frames[i];
        if f.len() > 300 {
            // Reassembly: one frame over three segments.
            let (a, rest) = f.split_at(1);
            let (b, c) = rest.split_at(200);
            for part in [a, b, c] {
                pcap.segment(sent_by_host(f), part);
            }
            i += 1;
        } else if i + 1 < frames.len()
            && sent_by_host(f) == sent_by_host(&frames[i + 1])
            && frames[i + 1].len() <= 300
        {
            // Two frames in one segment.
            let both = [f.as_slice(), frames[i + 1].as_slice()].concat();
            pcap.segment(sent_by_host(f), &both);
            i += 2;
        } else {
            pcap.segment(sent_by_host(f), f);
            i += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ykt.pcap");
    std::fs::write(&path, &pcap.bytes).unwrap();

    let fields = [
        "ykt.type",
        "ykt.seq",
        "ykt.corr",
        "ykt.mac",
        "ykt.debit_req.amount",
        "ykt.debit_req.card_no",
        "ykt.record.serial",
        "ykt.load_req.amount",
        "ykt.load_resp.amount",
        "ykt.waits_resp.amount",
        "ykt.ret.text",
        "ykt.error.reason",
        "ykt.params.version",
    ];
    let Some(cols) = tshark(&path, &[], &fields) else {
        return;
    };
    let types: Vec<i64> = cols[0].iter().map(|v| number(v)).collect();
    let sent: Vec<i64> = frames.iter().map(|f| i64::from(f[5])).collect();
    assert_eq!(types, sent, "message types, in order");
    let seqs: Vec<i64> = cols[1].iter().map(|v| number(v)).collect();
    let sent_seqs: Vec<i64> = frames
        .iter()
        .map(|f| i64::from(u32::from_be_bytes(f[11..15].try_into().unwrap())))
        .collect();
    assert_eq!(seqs, sent_seqs);
    let corrs: Vec<i64> = cols[2].iter().map(|v| number(v)).collect();
    let sent_corrs: Vec<i64> = frames
        .iter()
        .map(|f| i64::from(u32::from_be_bytes(f[15..19].try_into().unwrap())))
        .collect();
    assert_eq!(corrs, sent_corrs);
    let macs: Vec<String> = cols[3].iter().map(|m| m.replace(':', "")).collect();
    let sent_macs: Vec<String> = frames
        .iter()
        .map(|f| hex::encode(&f[f.len() - 8..]))
        .collect();
    assert_eq!(macs, sent_macs);

    let debit = test_vectors::debit_request();
    assert_eq!(cols[4], [debit.amount.to_string()]);
    assert_eq!(cols[5], [debit.card_no.get().to_string()]);
    assert_eq!(cols[6], [test_vectors::record().serial.to_string()]);
    // The loads of the protocol's vectors (docs/protocol.md §9), then the test's own.
    let amounts = |a: i64, b: i64| vec![a.to_string(), b.to_string()];
    assert_eq!(
        cols[7],
        amounts(test_vectors::load_request().amount, LOAD_AMOUNT)
    );
    assert_eq!(
        cols[8],
        amounts(test_vectors::load_response().amount, LOAD_AMOUNT)
    );
    assert_eq!(
        cols[9],
        amounts(test_vectors::waiting_response().amount, WAITING)
    );
    // Every response's code with its text: successes, the what-waits refusal, the error.
    assert!(cols[10].iter().any(|t| t == "交易成功"), "{:?}", cols[10]);
    assert!(
        cols[10].iter().any(|t| t == "卡补助序号异常"),
        "{:?}",
        cols[10]
    );
    assert!(
        cols[10].iter().any(|t| t == "前置机密钥错"),
        "{:?}",
        cols[10]
    );
    // The vectors' error response, then ours (4: bad MAC).
    assert_eq!(cols[11].len(), 2, "{:?}", cols[11]);
    assert_eq!(cols[11][1], "4");
    let params_version = test_vectors::params().version.to_string();
    assert!(cols[12].contains(&params_version), "{:?}", cols[12]);

    // Nothing malformed, no expert error.
    let Some(bad) = tshark(
        &path,
        &[
            "-Y",
            "_ws.malformed || ykt.trailing || ykt.short || _ws.expert.severity == \"Error\"",
        ],
        &["frame.number"],
    ) else {
        return;
    };
    assert!(bad[0].is_empty(), "malformed frames: {:?}", bad[0]);
}

/// The vectors of one suite in a pcap, one segment each, then a forged frame: the file's
/// path and how many of the vectors carry a MAC.
fn vectors_pcap(dir: &Path, suite: Suite) -> (PathBuf, usize) {
    let frames: Vec<Vec<u8>> = test_vectors::all(suite)
        .unwrap()
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let mut pcap = Pcap::new();
    for f in &frames {
        pcap.segment(sent_by_host(f), f);
    }
    // One more, its MAC forged.
    let mut forged = frames[2].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    pcap.segment(sent_by_host(&forged), &forged);
    let path = dir.join(format!("{suite:?}.pcap"));
    std::fs::write(&path, &pcap.bytes).unwrap();
    // An unauthenticated error response (8 zero bytes) has no MAC to verify.
    let macd = frames
        .iter()
        .filter(|f| !(f[5] == 0x7F && f[f.len() - 8..] == [0; 8]))
        .count();
    (path, macd)
}

// #16 (dissector): with the master and session keys as preferences, every MAC of the
// vectors verifies, in both suites, and a forged one does not.
#[test]
fn tshark_verifies_macs_with_the_keys_given() {
    let dir = tempfile::tempdir().unwrap();
    for (suite, number) in [(Suite::Aes128, 1), (Suite::Sm4, 2)] {
        let (path, n) = vectors_pcap(dir.path(), suite);
        let prefs = [
            "-o".to_owned(),
            format!("ykt.suite:{number}"),
            "-o".to_owned(),
            format!("ykt.master_key:{}", hex::encode(test_vectors::MASTER_KEY.0)),
            "-o".to_owned(),
            format!(
                "ykt.session_key:{}",
                hex::encode(test_vectors::SESSION_KEY.0)
            ),
        ];
        let prefs: Vec<&str> = prefs.iter().map(String::as_str).collect();
        let Some(cols) = tshark(&path, &prefs, &["ykt.mac.valid"]) else {
            return;
        };
        let valid: Vec<bool> = cols[0]
            .iter()
            .map(|v| matches!(v.as_str(), "1" | "True"))
            .collect();
        let mut expected = vec![true; n];
        expected.push(false);
        assert_eq!(valid, expected, "{suite:?}: {:?}", cols[0]);
        // Without keys, nothing is claimed.
        let cols = tshark(&path, &[], &["ykt.mac.valid"]).unwrap();
        assert!(cols[0].is_empty(), "{:?}", cols[0]);
    }
}

// #16: a truncated body is reported, so the test above can fail.
#[test]
fn tshark_reports_a_short_body() {
    let mut pcap = Pcap::new();
    pcap.segment(false, &frame(0x03, 0, 7, 0, &[0; 10]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.pcap");
    std::fs::write(&path, &pcap.bytes).unwrap();
    let Some(bad) = tshark(&path, &["-Y", "ykt.short"], &["frame.number"]) else {
        return;
    };
    assert_eq!(bad[0], ["1"]);
}

// #16: the dissector's code tables are the spec's (crates/ykt-proto/src/codes.rs).
#[test]
fn dissector_codes_are_the_specs() {
    let text = std::fs::read_to_string(lua()).unwrap();
    for (code, name) in ReturnCode::TABLE {
        let line = format!("  [{}] = \"{name}\",", code.0);
        assert!(text.contains(&line), "ykt.lua lacks {line}");
    }
    for (code, name) in ykt_proto::InfoCode::TABLE {
        let line = format!("  [{}] = \"{name}\",", code.0);
        assert!(text.contains(&line), "ykt.lua lacks {line}");
    }
}
