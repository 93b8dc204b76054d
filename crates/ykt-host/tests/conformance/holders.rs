//! Conformance tests of cardholders (R-B2) on both backends: add, update, status, search by
//! every key, one active card at a time (also when two stores race), masking, import.

use ykt_host::domain::cardholders::{self as ch, Identity, Search};
use ykt_host::domain::journal::{self, Actor, Filter};
use ykt_host::import::{self, Format};
use ykt_host::repo_holders::{HolderFields, HolderKind, HolderStatus};
use ykt_host::*;

use super::support::*;

fn actor() -> Actor {
    Actor::system("test")
}

fn fields(name: &str) -> HolderFields {
    HolderFields {
        name: name.into(),
        kind: HolderKind::Student,
        department: "计算机学院".into(),
        id_number: Some("11010519491231002X".into()),
        phone: Some("13800138000".into()),
    }
}

fn add(s: &Store, number: &str, name: &str) -> repo_holders::Cardholder {
    let (n, f) = (number.to_owned(), fields(name));
    s.execute(move |tx| ch::add(tx, &actor(), &n, &f, now()))
        .unwrap()
}

fn find(s: &Store, q: &str) -> Vec<String> {
    let q = q.to_owned();
    s.read(move |tx| {
        ch::search(
            tx,
            &Search {
                q: q.clone(),
                after: None,
                limit: 100,
            },
        )
    })
    .unwrap()
    .into_iter()
    .map(|h| h.number)
    .collect()
}

fn attach(s: &Store, number: &str, card: ykt_proto::CardNo) -> Result<()> {
    let n = number.to_owned();
    s.execute(move |tx| ch::attach_card(tx, &actor(), &n, card, now()).map(drop))
}

// R-B2: add with validation, unique number, update, status as a type; each change journalled
// with the ID number masked.
pub fn cardholders_add_update_status(f: &Fixture) {
    let s = &f.store;
    let h = add(s, "2021001", "张三");
    assert_eq!(h.status, HolderStatus::Active);
    let (n, fl) = ("2021001".to_owned(), fields("李四"));
    let e = s
        .execute(move |tx| ch::add(tx, &actor(), &n, &fl, now()))
        .unwrap_err();
    assert!(e.to_string().contains("已存在"), "{e}");
    let mut bad = fields("王五");
    bad.id_number = Some("110105194912310021".into());
    let e = s
        .execute(move |tx| ch::add(tx, &actor(), "2021009", &bad, now()))
        .unwrap_err();
    assert!(e.to_string().contains("身份证号"), "{e}");
    let mut changed = fields("张三丰");
    changed.phone = None;
    let c2 = changed.clone();
    let u = s
        .execute(move |tx| ch::update(tx, &actor(), "2021001", &c2, now()))
        .unwrap();
    assert_eq!(u.fields, changed);
    let st = s
        .execute(|tx| ch::set_status(tx, &actor(), "2021001", HolderStatus::Left, now()))
        .unwrap();
    assert_eq!(st.status, HolderStatus::Left);
    assert!(
        s.execute(|tx| ch::set_status(tx, &actor(), "2021001", HolderStatus::Left, now()))
            .is_err()
    );
    let log = s
        .read(|tx| {
            journal::list(
                tx,
                &Filter {
                    target: Some("cardholder:2021001".into()),
                    limit: 100,
                    ..Filter::default()
                },
            )
        })
        .unwrap();
    assert_eq!(log.len(), 3);
    let text = serde_json::to_string(&log.iter().map(|e| &e.after).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains("11010519491231002X"), "{text}");
    assert!(text.contains("110105********002X"), "{text}");
    let v = ch::view(&st, Identity::Masked);
    assert_eq!(v["id_number"], "110105********002X");
    assert_eq!(
        ch::view(&st, Identity::Shown)["id_number"],
        "11010519491231002X"
    );
}

// R-B2: search by name prefix or exact name, by number, by card number, by display number;
// paged in (name, number) order.
pub fn cardholders_search(f: &Fixture) {
    let s = &f.store;
    world(s);
    add(s, "S1", "张三");
    add(s, "S2", "张三丰");
    add(s, "S3", "李四");
    let card = card(s, 0);
    attach(s, "S3", card.no).unwrap();
    assert_eq!(find(s, "张"), ["S1", "S2"]);
    assert_eq!(find(s, "张三丰"), ["S2"]);
    assert_eq!(find(s, "S2"), ["S2"]);
    assert_eq!(find(s, &card.no.get().to_string()), ["S3"]);
    assert_eq!(find(s, &card.display_no.get().to_string()), ["S3"]);
    assert!(find(s, "王").is_empty());
    assert_eq!(find(s, ""), ["S1", "S2", "S3"]); // 张 (U+5F20) < 李 (U+674E), bytewise
    let page = s
        .read(|tx| {
            ch::search(
                tx,
                &Search {
                    q: "张".into(),
                    after: Some("S1".into()),
                    limit: 1,
                },
            )
        })
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].number, "S2");
}

// R-B2: one active card at a time; old (cancelled) cards stay listed; a card of someone
// else is refused; a holder who left gets no card.
pub fn cardholders_one_active_card(f: &Fixture) {
    let s = &f.store;
    world(s);
    add(s, "T1", "赵六");
    add(s, "T2", "钱七");
    let (a, b) = (card(s, 0), card(s, 0));
    attach(s, "T1", a.no).unwrap();
    let e = attach(s, "T1", b.no).unwrap_err();
    assert!(e.to_string().contains("未注销"), "{e}");
    let e = attach(s, "T2", a.no).unwrap_err();
    assert!(e.to_string().contains("其他持卡人"), "{e}");
    let no = a.no;
    s.execute(move |tx| domain::admin::set_card_status(tx, no, CardStatus::Cancelled).map(drop))
        .unwrap();
    attach(s, "T1", b.no).unwrap();
    let cards = s
        .read(|tx| {
            let h = ch::get(tx, "T1")?.unwrap();
            ch::cards(tx, &h)
        })
        .unwrap();
    assert_eq!(cards.len(), 2, "old cards kept");
    s.execute(|tx| ch::set_status(tx, &actor(), "T2", HolderStatus::Left, now()))
        .unwrap();
    let c = card(s, 0);
    assert!(attach(s, "T2", c.no).is_err());
}

// R-B2: two stores attaching two cards to one holder at once: exactly one wins.
pub fn cardholders_concurrent_attach(f: &Fixture) {
    let a = f.store.clone();
    world(&a);
    let b = (f.reopen)();
    for round in 0..5 {
        let number = format!("R{round}");
        add(&a, &number, "并发");
        let (c1, c2) = (card(&a, 0), card(&a, 0));
        let t1 = {
            let (s, n) = (a.clone(), number.clone());
            std::thread::spawn(move || attach(&s, &n, c1.no).is_ok())
        };
        let t2 = {
            let (s, n) = (b.clone(), number.clone());
            std::thread::spawn(move || attach(&s, &n, c2.no).is_ok())
        };
        let wins = [t1.join().unwrap(), t2.join().unwrap()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{number}: {wins:?}");
        let n = number.clone();
        let held = a
            .read(move |tx| {
                let h = ch::get(tx, &n)?.unwrap();
                ch::cards(tx, &h)
            })
            .unwrap();
        assert_eq!(held.len(), 1);
    }
}

fn run_import(s: &Store, format: Format, bytes: &[u8]) -> ch::ImportCounts {
    let rows = import::parse(format, bytes).unwrap();
    s.execute(move |tx| ch::import(tx, &actor(), &rows, "sha", now()))
        .unwrap()
}

// R-B2: an import upserts by number in one transaction with one journal entry; the same
// file again changes nothing and says so.
pub fn cardholders_import_idempotent(f: &Fixture) {
    let s = &f.store;
    add(s, "2021002", "旧名");
    let csv = "\u{feff}学工号,姓名,类别,部门,身份证号,电话\n\
               2021001,张三,学生,计算机学院,11010519491231002X,13800138000\n\
               2021002,李四,教职工,后勤处,,\n";
    let c = run_import(s, Format::Csv, csv.as_bytes());
    assert_eq!((c.added, c.updated, c.unchanged), (1, 1, 0));
    let c = run_import(s, Format::Csv, csv.as_bytes());
    assert_eq!((c.added, c.updated, c.unchanged), (0, 0, 2));
    let h = s.read(|tx| ch::get(tx, "2021002")).unwrap().unwrap();
    assert_eq!(h.fields.name, "李四");
    assert_eq!(h.fields.kind, HolderKind::Staff);
    let imports = s
        .read(|tx| {
            journal::list(
                tx,
                &Filter {
                    operation: Some("cardholder.import".into()),
                    limit: 10,
                    ..Filter::default()
                },
            )
        })
        .unwrap();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[0].after.as_ref().unwrap()["unchanged"], 2);
}
