#![allow(clippy::unwrap_used)]
//! `ykt keys` and `ykt card` run as a user would, on a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

fn ykt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ykt"))
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = ykt(dir.path(), &["keys", "new", "--out", "sys.keys"]);
    assert!(o.status.success(), "{}", text(&o));
    dir
}

fn new_card(dir: &Path, ty: &str, out: &str, expiry: &str) -> Output {
    ykt(
        dir,
        &[
            "card",
            "new",
            "--type",
            ty,
            "--card-no",
            "16777215",
            "--display-no",
            "2024000123",
            "--class",
            "200",
            "--expiry",
            expiry,
            "--balance",
            "12345",
            "--pin",
            "123456",
            "--keys",
            "sys.keys",
            "--out",
            out,
            "--uid",
            "1a2b3c4d",
        ],
    )
}

#[test]
fn keys_file_is_private_and_never_overwritten() {
    let dir = setup();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sys.keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A key file others can read is refused.
        std::fs::write(
            dir.path().join("open.keys"),
            std::fs::read(dir.path().join("sys.keys")).unwrap(),
        )
        .unwrap();
        std::fs::set_permissions(
            dir.path().join("open.keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let o = ykt(
            dir.path(),
            &["card", "check", "x.mfd", "--keys", "open.keys"],
        );
        assert!(!o.status.success());
        assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    }
    let o = ykt(dir.path(), &["keys", "new", "--out", "sys.keys"]);
    assert!(!o.status.success());
}

// R-T2.1, R-T2.2, R-F4.4: an MF1 card issued with the largest card number, shown decoded.
#[test]
fn mf1_card_new_show_check() {
    let dir = setup();
    let o = new_card(dir.path(), "mf1", "card.mfd", "2099-12-31");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(dir.path().join("card.mfd")).unwrap().len(),
        1024
    );
    let o = ykt(
        dir.path(),
        &["card", "show", "card.mfd", "--keys", "sys.keys"],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in [
        "应用序列号 (card no): 16777215",
        "显示卡号 (display no): 2024000123",
        "卡类别 (class): 200",
        "123.45 元",
        "钱包 1",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    let o = ykt(
        dir.path(),
        &["card", "check", "card.mfd", "--keys", "sys.keys"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("card usable"));
}

// R-F4.2: check names the good copy; both copies bad makes the card unusable.
#[test]
fn mf1_check_finds_damaged_wallet_copies() {
    let dir = setup();
    assert!(
        new_card(dir.path(), "mf1", "card.mfd", "2099-12-31")
            .status
            .success()
    );
    let path = dir.path().join("card.mfd");
    let mut dump = std::fs::read(&path).unwrap();
    dump[16 * 16 + 2] ^= 0x10; // main copy of wallet 0 (sector 4, block 0)
    std::fs::write(&path, &dump).unwrap();
    let o = ykt(
        dir.path(),
        &["card", "check", "card.mfd", "--keys", "sys.keys"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wallet 0: main copy bad, backup good"),
        "{}",
        text(&o)
    );
    dump[18 * 16 + 5] ^= 0x01; // backup copy (block 2 of sector 4)
    std::fs::write(&path, &dump).unwrap();
    let o = ykt(
        dir.path(),
        &["card", "check", "card.mfd", "--keys", "sys.keys"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("card not usable: wallet 0: both wallet copies damaged"),
        "{}",
        text(&o)
    );
}

// R-F4.15: a card whose lock block is damaged is treated as locked.
#[test]
fn mf1_check_refuses_damaged_lock_and_foreign_keys() {
    let dir = setup();
    assert!(
        new_card(dir.path(), "mf1", "card.mfd", "2099-12-31")
            .status
            .success()
    );
    let path = dir.path().join("card.mfd");
    let mut dump = std::fs::read(&path).unwrap();
    dump[13 * 16] ^= 0x01;
    std::fs::write(&path, &dump).unwrap();
    let o = ykt(
        dir.path(),
        &["card", "check", "card.mfd", "--keys", "sys.keys"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("treat the card as locked"),
        "{}",
        text(&o)
    );
    assert!(
        ykt(dir.path(), &["keys", "new", "--out", "other.keys"])
            .status
            .success()
    );
    let o = ykt(
        dir.path(),
        &["card", "check", "card.mfd", "--keys", "other.keys"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("authentication failed"), "{}", text(&o));
}

#[test]
fn cpu_card_new_show_check_and_expiry() {
    let dir = setup();
    let o = new_card(dir.path(), "cpu", "card.cpu", "2099-12-31");
    assert!(o.status.success(), "{}", text(&o));
    let o = ykt(
        dir.path(),
        &["card", "show", "card.cpu", "--keys", "sys.keys"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("应用序列号 (card no): 16777215"));
    assert!(
        ykt(
            dir.path(),
            &["card", "check", "card.cpu", "--keys", "sys.keys"]
        )
        .status
        .success()
    );
    let o = ykt(
        dir.path(),
        &[
            "card",
            "check",
            "card.cpu",
            "--keys",
            "sys.keys",
            "--today",
            "2100-01-01",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("card expired on 2099-12-31"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_input_is_refused_with_a_message() {
    let dir = setup();
    let o = ykt(
        dir.path(),
        &[
            "card",
            "new",
            "--type",
            "mf1",
            "--card-no",
            "16777216",
            "--display-no",
            "1",
            "--class",
            "1",
            "--expiry",
            "2030-01-01",
            "--balance",
            "1",
            "--pin",
            "1234",
            "--keys",
            "sys.keys",
            "--out",
            "x.mfd",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("1 to 16777215"), "{}", text(&o));
    let o = ykt(
        dir.path(),
        &[
            "card",
            "new",
            "--type",
            "mf1",
            "--card-no",
            "1",
            "--display-no",
            "1",
            "--class",
            "1",
            "--expiry",
            "2030-01-01",
            "--balance",
            "16777216",
            "--pin",
            "1234",
            "--keys",
            "sys.keys",
            "--out",
            "x.mfd",
        ],
    );
    assert!(!o.status.success());
    std::fs::write(dir.path().join("junk.bin"), [0u8; 100]).unwrap();
    let o = ykt(
        dir.path(),
        &["card", "show", "junk.bin", "--keys", "sys.keys"],
    );
    assert!(!o.status.success());
}

// R-F4.2, R-P5.7: a card left by a debit torn between main and backup: check says the
// transaction landed and the terminal will finish it; the card stays usable.
#[test]
fn check_reports_an_interrupted_debit() {
    use ykt_card::app::{Mf1App, TxKind, TxRequest};
    use ykt_card::mf1::Mf1Card;
    use ykt_card::{Fault, SimCard, SimulatedReader, TearOutcome};
    let dir = setup();
    assert!(
        new_card(dir.path(), "mf1", "card.mfd", "2099-12-31")
            .status
            .success()
    );
    let path = dir.path().join("card.mfd");
    let keys = ykt_card::keys::SystemKeys::parse(
        &std::fs::read_to_string(dir.path().join("sys.keys")).unwrap(),
    )
    .unwrap();
    let app = Mf1App::new(&keys);
    let mut r = SimulatedReader::new(3);
    r.place(SimCard::Mf1(
        Mf1Card::from_dump(&std::fs::read(&path).unwrap()).unwrap(),
    ));
    let c = app.read(&mut r, 0).unwrap();
    // Operation 8 of a debit writes the backup copy.
    r.inject(r.op_count() + 8, Fault::Tear(TearOutcome::Garbage));
    let time = chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    let req = TxRequest {
        kind: TxKind::Purchase,
        amount: 345,
        fee: 0,
        time,
        device: ykt_proto::types::PhysicalId([1, 2, 3, 4]),
        serial: 1,
    };
    assert!(app.transact(&mut r, &c, &req).is_err());
    let Some(SimCard::Mf1(card)) = r.take() else {
        panic!("card gone")
    };
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, card.to_dump()).unwrap();
    let o = ykt(
        dir.path(),
        &["card", "check", "card.mfd", "--keys", "sys.keys"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wallet 0: main copy good, backup bad; terminal would: 完成中断的交易"),
        "{}",
        text(&o)
    );
    let o = ykt(
        dir.path(),
        &["card", "show", "card.mfd", "--keys", "sys.keys"],
    );
    assert!(
        text(&o).contains("进行中 (pending) 消费 #1: 123.45 元 → 120.00 元"),
        "{}",
        text(&o)
    );
}
