//! End to end through the real binary: `ykt serve --demo` (SQLite, then PostgreSQL), a
//! terminal over TCP, the operator CLI against the admin API, SIGTERM, then `ykt audit`.
#![allow(clippy::unwrap_used)]

mod serve_support;

use serde_json::Value;
use serve_support::*;
use ykt_card::cpu::CpuCard;
use ykt_card::cpu::app::CpuApp;
use ykt_card::cpu::psam::Psam;
use ykt_card::{SimCard, SimulatedReader};
use ykt_proto::*;

const DEVICE_1: &str = "10000001";
const DEVICE_2: &str = "10000002";

fn purchase(device: PhysicalId, card: u32, serial: u32, before: Fen, amount: Fen) -> Record {
    Record {
        device,
        serial,
        kind: RecordKind::Purchase,
        status: RecordStatus::Initiated,
        online: true,
        card_type: CardType::Mf1,
        card_no: CardNo::new(card).unwrap(),
        card_counter: 0,
        wallet_no: 1,
        balance_before: before,
        amount,
        fee: 0,
        balance_after: before - amount,
        time: campus_now(),
        merchant_no: 1001,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

fn debit(t: &mut Terminal, r: &Record) -> DebitResponse {
    match t.request(Message::DebitRequest(DebitRequest {
        card_no: r.card_no,
        card_type: r.card_type,
        card_counter: r.card_counter,
        balance_before: r.balance_before,
        amount: r.amount,
        fee: r.fee,
        wallet_no: r.wallet_no,
        item_code: r.item_code,
        serial: r.serial,
        time: r.time,
    })) {
        Message::DebitResponse(d) => d,
        other => panic!("debit answered with {other:?}"),
    }
}

fn balance(s: &Serve, card: u32) -> i64 {
    s.cli_json(&["card", "info", &card.to_string()])["balance"]
        .as_i64()
        .unwrap()
}

/// A real purchase on the demo's CPU card 9 through a PSAM, as the host expects it: terminal
/// ID `00 00 ‖ physical ID`, terminal sequence = the record's serial.
fn cpu_record(s: &Serve, device: PhysicalId, serial: u32, amount: Fen) -> Record {
    let keys =
        ykt_card::keys::SystemKeys::parse(&std::fs::read_to_string(s.data().join("keys")).unwrap())
            .unwrap();
    let image = std::fs::read_to_string(s.data().join("cards").join("9.cpu")).unwrap();
    let mut reader = SimulatedReader::new(1);
    reader.place(SimCard::Cpu(CpuCard::from_image(&image).unwrap()));
    let read = CpuApp::read(&mut reader).unwrap();
    let d = device.0;
    let mut psam = Psam::new(&keys, [0, 0, d[0], d[1], d[2], d[3]], serial);
    let time = campus_now();
    let p = CpuApp::purchase(&mut reader, &read, &mut psam, amount, time).unwrap();
    Record {
        status: RecordStatus::Written,
        online: false,
        card_type: CardType::Cpu,
        time,
        balance_after: p.balance_after,
        tac: u32::from_be_bytes(p.tac),
        ..purchase(device, 9, serial, read.balance, amount)
    }
}

fn scenario(s: Serve) {
    let data = s.data();
    let day = campus_now().date().to_string();

    // R-P5.1: a demo terminal signs in with its provisioning file.
    let (mut t, resp) = Terminal::sign_in(s.terminal, &s.provisioning(DEVICE_1));
    assert_eq!(resp.code, ReturnCode::SUCCESS);
    assert_eq!(resp.merchant_no, 1001);
    let dev = t.device;

    // R-P5.2: an online debit of card 1 (50.00 元).
    let online = purchase(dev, 1, 1, 5_000, 300);
    let d = debit(&mut t, &online);
    assert_eq!((d.code, d.balance), (ReturnCode::SUCCESS, 4_700));
    // Its record uploaded after the card write: reconciled, not booked again.
    let written = Record {
        status: RecordStatus::Success,
        ..online.clone()
    };
    assert_eq!(t.upload(vec![written]), [0]);

    // R-P5.6, R-P5.9: an offline record of card 2, uploaded twice, booked once.
    let offline = Record {
        status: RecordStatus::Written,
        online: false,
        ..purchase(dev, 2, 2, 6_000, 450)
    };
    assert_eq!(t.upload(vec![offline.clone()]), [0]);
    assert_eq!(t.upload(vec![offline]), [0]);
    assert_eq!(balance(&s, 2), 5_550);

    // R-P5.5: an online debit of card 3, its card write failed, cancelled: the cancellation
    // record (serial + 1) reverses the debit.
    let failed = purchase(dev, 3, 3, 7_000, 200);
    assert_eq!(debit(&mut t, &failed).code, ReturnCode::SUCCESS);
    assert_eq!(balance(&s, 3), 6_800);
    let cancel = Record {
        kind: RecordKind::Cancellation,
        serial: 4,
        original_serial: Some(3),
        ..failed
    };
    assert_eq!(t.upload(vec![cancel]), [0]);
    assert_eq!(balance(&s, 3), 7_000);

    // CPU card records carry a TAC the host verifies with the key file: a genuine one is
    // booked, a forged one refused (99) and not booked.
    let cpu = cpu_record(&s, dev, 5, 500);
    let forged = Record {
        serial: 6,
        card_counter: 1,
        balance_before: cpu.balance_after,
        balance_after: cpu.balance_after - 500,
        tac: cpu.tac ^ 0x0101,
        ..cpu.clone()
    };
    assert_eq!(t.upload(vec![cpu.clone()]), [0]);
    assert_eq!(t.upload(vec![forged]), [99]);
    assert_eq!(balance(&s, 9), cpu.balance_after);

    // R-H4: a loss reported with the CLI reaches the terminal in its incremental blacklist
    // download (R-P5.1: the terminal downloads when the system version is newer).
    let v0 = resp.blacklist_version;
    let lost = s.cli_json(&["card", "lose", "4"]);
    assert_eq!(lost["status"], "lost");
    assert_eq!(lost["blacklist_version"].as_u64(), Some(u64::from(v0) + 1));
    let delta = match t.request(Message::BlacklistDeltaRequest(BlacklistDeltaRequest {
        since: v0,
        max_entries: 100,
    })) {
        Message::BlacklistDeltaResponse(d) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(delta.to, v0 + 1);
    assert_eq!(
        delta.entries,
        [BlacklistEntry {
            op: BlacklistOp::Add,
            card_no: CardNo::new(4).unwrap()
        }]
    );
    assert!(s.cli(&["blacklist", "show"]).contains('4'));
    let info = s.cli_json(&["card", "info", "4"]);
    assert_eq!(info["blacklisted"], true);

    // R-F4.18, R-F4.13: parameters changed with the CLI are pushed to the connected terminal.
    let p = s.cli_json(&[
        "device",
        "set-params",
        DEVICE_1,
        "--work-mode",
        "full-online",
        "--fee-rate",
        "3=5",
    ]);
    assert_eq!(p["pushed"], true);
    assert_eq!(p["device"]["params"]["work_mode"], "full-online");
    // The next exchange answers the push (the terminal acknowledges the new version).
    let again = t.request(Message::BlacklistDeltaRequest(BlacklistDeltaRequest {
        since: v0 + 1,
        max_entries: 100,
    }));
    assert!(matches!(again, Message::BlacklistDeltaResponse(ref d) if d.entries.is_empty()));

    // Merchants and devices through the CLI (R-H1, R-H3).
    s.cli(&["merchant", "add", "--no", "1005", "--name", "教工餐厅"]);
    assert!(s.cli(&["merchant", "list"]).contains("教工餐厅"));
    s.cli(&[
        "device",
        "add",
        "--id",
        "10000008",
        "--terminal-no",
        "8",
        "--merchant",
        "1005",
    ]);
    let (_t8, r8) = Terminal::sign_in(s.terminal, &s.provisioning("10000008"));
    assert_eq!((r8.code, r8.merchant_no), (ReturnCode::SUCCESS, 1005));
    s.cli(&["device", "disable", DEVICE_2]);
    let (_t2, r2) = Terminal::sign_in(s.terminal, &s.provisioning(DEVICE_2));
    assert_eq!(r2.code, ReturnCode::POS_DISABLED);
    let devices = s.cli_json(&["device", "list"]);
    let d2 = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == DEVICE_2)
        .unwrap();
    assert_eq!(d2["status"], "disabled");

    // R-T2.1: `card issue` opens the account and writes an image `ykt card check` accepts.
    let img = s.dir.path().join("new.mf1");
    let issued = s.cli_json(&[
        "card",
        "issue",
        "--display-no",
        "2026000099",
        "--expiry",
        "2030-07-31",
        "--balance",
        "8800",
        "--pin",
        "123456",
        "--out",
        path_str(&img),
    ]);
    let no = issued["card_no"].as_u64().unwrap();
    assert_eq!(issued["balance"], 8_800);
    let check = ykt()
        .args(["card", "check", path_str(&img), "--keys"])
        .arg(data.join("keys"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let shown = ykt()
        .args(["card", "show", path_str(&img), "--keys"])
        .arg(data.join("keys"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("应用序列号 (card no): {no}"))
    );
    let listed = s.cli_json(&[
        "card",
        "list",
        "--after",
        &(no - 1).to_string(),
        "--limit",
        "5",
    ]);
    assert_eq!(listed["cards"][0]["card_no"].as_u64(), Some(no));

    // The daily report: per merchant and device, debits (online 300, offline 450, the
    // cancelled 200, CPU 500) and the one reversal (R-P5.5).
    let report = s.cli_json(&["report", "daily", "--date", &day]);
    let m = &report["merchants"][0];
    assert_eq!(m["merchant_no"], 1001);
    assert_eq!(
        (m["debits"].as_u64(), m["debit_amount"].as_i64()),
        (Some(4), Some(1_450))
    );
    assert_eq!(
        (m["reversals"].as_u64(), m["reversal_amount"].as_i64()),
        (Some(1), Some(200))
    );
    let d = &report["devices"][0];
    assert_eq!(d["device"], DEVICE_1);
    assert_eq!(d["debit_amount"], m["debit_amount"]);
    assert_eq!(report["net_amount"], 1_250);
    let table = s.cli(&["report", "daily", "--date", &day]);
    assert!(table.contains("1001") && table.contains("14.50"), "{table}");

    // Refusals come back as the API's message and status 1.
    let refused = s.cli_output(&["card", "unfreeze", "1"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not frozen"));

    // R-H7: a deregistered FEP serves no terminal (13).
    s.cli(&["fep", "deregister", "1"]);
    let (_t, r) = Terminal::sign_in(s.terminal, &s.provisioning(DEVICE_1));
    assert_eq!(r.code, ReturnCode::FEP_DEREGISTERED);

    // SIGTERM: exit 0; then the books balance (R-H6).
    drop(t);
    let database = s.database.clone();
    let dir = s.stop();
    let mut audit = ykt();
    audit.args(["audit", "--data"]).arg(dir.path().join("data"));
    if let Some(db) = &database {
        audit.args(["--database", db]);
    }
    let out = audit.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit clean"));
}

#[test]
fn serve_end_to_end_sqlite() {
    scenario(Serve::start(None));
}

#[test]
fn serve_end_to_end_postgres() {
    let Some(db) = PgDb::create() else { return };
    scenario(Serve::start(Some(db.url())));
}

// The admin API refuses a request without the token, and the token file is the owner's only.
#[test]
fn admin_api_needs_the_token() {
    let s = Serve::start(None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data().join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = ykt()
        .args(["merchant", "list", "--token", "wrong", "--server"])
        .arg(format!("http://{}", s.http))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("令牌无效"));
    let v: Value = serde_json::from_str(&s.cli(&["merchant", "list", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    // Pages are bounded; the list pages through every card exactly once.
    let bad = s.cli_output(&["card", "list", "--limit", "1001"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("limit is 1 to 1000"));
    let (mut after, mut seen) = (0u64, Vec::new());
    loop {
        let page = s.cli_json(&[
            "card",
            "list",
            "--after",
            &after.to_string(),
            "--limit",
            "3",
        ]);
        seen.extend(
            page["cards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["card_no"].as_u64().unwrap()),
        );
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    s.stop();
}
