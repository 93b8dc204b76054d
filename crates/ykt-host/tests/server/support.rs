//! A running server on port 0 over a fresh store, a small campus in it, and `TestTerminal`:
//! a protocol client built on `ykt_proto::Session` that answers the host's requests.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ykt_host::domain::admin;
use ykt_host::server::{Server, ServerConfig};
use ykt_host::*;
use ykt_proto::*;

pub const FEP: u32 = 1;
pub const MERCHANT: u32 = 100;
pub const DEVICE: PhysicalId = PhysicalId([0x01, 0x02, 0x03, 0x04]);
pub const DISABLED: PhysicalId = PhysicalId([0x0D, 0x0D, 0x0D, 0x0D]);
pub const KEY: [u8; 16] = [0x11; 16];
pub const TOKEN: &str = "test-token";

pub struct World {
    pub server: Server,
    pub store: Store,
    pub cards: Vec<CardNo>,
    _dir: Option<tempfile::TempDir>,
    _pg_db: Option<PgDb>,
}

/// Drops its test database at the end.
pub struct PgDb(String);

impl Drop for PgDb {
    fn drop(&mut self) {
        let db = self.0.clone();
        // The sync client runs its own runtime: keep it off the test's.
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
            }
        })
        .join();
    }
}

pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

fn config() -> ServerConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut c = ServerConfig::new(any, any, TOKEN.into());
    c.frame_deadline = Duration::from_millis(300);
    c.max_frame = 4096;
    c
}

fn store_config(b: Backend) -> StoreConfig {
    let mut c = StoreConfig::new(b);
    c.writers = 2;
    c.readers = 1;
    c
}

/// Registers the FEP, a merchant, an enabled device, a disabled one and three cards of
/// 100.00 元 each.
fn seed(store: &Store) -> Vec<CardNo> {
    let now = NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap();
    store
        .execute(move |tx| {
            admin::register_fep(tx, FEP, "test FEP")?;
            admin::activate_fep(tx, FEP)?;
            admin::create_merchant(tx, MERCHANT, "第一食堂")?;
            for (id, status) in [
                (DEVICE, model::DeviceStatus::Enabled),
                (DISABLED, model::DeviceStatus::Disabled),
            ] {
                admin::register_device(
                    tx,
                    NewDevice {
                        id,
                        terminal_no: 7,
                        merchant_no: Some(MERCHANT),
                        mac_suite: MacSuite::Aes128Cmac,
                        functions: Functions::ALL,
                        max_amount: 0,
                        params: params_codec::default_params(),
                    },
                )?;
                admin::set_device_key(tx, id, KEY)?;
                admin::set_device_status(tx, id, status)?;
            }
            let mut cards = Vec::new();
            for i in 0..3u64 {
                let c = admin::issue_card(
                    tx,
                    NewCard {
                        display_no: DisplayNo::new(2026_0000 + i).unwrap(),
                        class: 1,
                        expiry: NaiveDate::from_ymd_opt(2030, 7, 1).unwrap(),
                        counter: 0,
                    },
                )?;
                // The opening balance, written on the card at issue.
                admin::pay_opening_balance(
                    tx,
                    admin::Payer::system(&ykt_host::domain::journal::Actor::system("test")),
                    c.clone(),
                    10_000,
                    &format!("open:{i}"),
                    now,
                )?;
                cards.push(c.no);
            }
            Ok(cards)
        })
        .unwrap()
}

pub async fn sqlite() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_config(Backend::Sqlite(dir.path().join("ykt.db")))).unwrap();
    start(store, Some(dir), None).await
}

/// PostgreSQL at 127.0.0.1:5432: mandatory with `CI=true`, skipped with a message otherwise.
pub async fn postgres() -> Option<World> {
    let (store, db) = tokio::task::spawn_blocking(pg_store).await.unwrap()?;
    Some(start(store, None, Some(db)).await)
}

fn pg_store() -> Option<(Store, String)> {
    let mut admin = match postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true: PostgreSQL at 127.0.0.1:5432 is mandatory but unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipped: PostgreSQL unreachable ({e})");
            return None;
        }
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let db = format!(
        "ykt_server_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = format!("host=127.0.0.1 port=5432 user=postgres dbname={db}");
    Some((
        Store::open(store_config(Backend::Postgres(url))).unwrap(),
        db,
    ))
}

async fn start(store: Store, dir: Option<tempfile::TempDir>, pg_db: Option<String>) -> World {
    let s2 = store.clone();
    let cards = tokio::task::spawn_blocking(move || seed(&s2))
        .await
        .unwrap();
    let server = Server::start(config(), store.clone()).await.unwrap();
    World {
        server,
        store,
        cards,
        _dir: dir,
        _pg_db: pg_db.map(PgDb),
    }
}

pub fn time() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 2)
        .unwrap()
        .and_hms_opt(11, 45, 30)
        .unwrap()
}

pub fn master() -> DeviceKey {
    DeviceKey {
        suite: Suite::Aes128,
        key: Key(KEY),
    }
}

/// Reads one whole frame; `None` when the server closed the connection.
pub async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.ok()?;
    let len = usize::from(u16::from_be_bytes(head));
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).await.ok()?;
    let mut f = head.to_vec();
    f.extend_from_slice(&rest);
    Some(f)
}

/// Whether the server closed the connection (reads until EOF, ignoring frames).
pub async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

pub struct TestTerminal {
    pub stream: TcpStream,
    pub device: PhysicalId,
    pub session: Option<Session>,
    /// Host requests seen, in order.
    pub host_requests: Vec<Message>,
    pub pending_records: u32,
}

impl TestTerminal {
    pub async fn connect(addr: SocketAddr, device: PhysicalId) -> TestTerminal {
        TestTerminal {
            stream: TcpStream::connect(addr).await.unwrap(),
            device,
            session: None,
            host_requests: Vec::new(),
            pending_records: 0,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Signs in; the response (or the server's error) is returned.
    pub async fn sign_in_with(
        &mut self,
        key: &DeviceKey,
        nonce: [u8; 8],
    ) -> Result<SignInResponse, ProtoError> {
        let req = SignInRequest {
            suite: key.suite,
            clock: time(),
            blacklist_version: 0,
            params_version: 0,
            nonce,
        };
        let mut out = Vec::new();
        seal_sign_in(self.device, key, &req, &mut out).unwrap();
        self.send_raw(&out).await;
        let frame = read_frame(&mut self.stream)
            .await
            .expect("an answer to sign-in");
        let (resp, session) = open_sign_in_response(self.device, key, &nonce, &frame)?;
        self.session = session;
        Ok(resp)
    }

    pub async fn sign_in(&mut self) -> SignInResponse {
        let nonce: [u8; 8] = rand::random();
        self.sign_in_with(&master(), nonce).await.unwrap()
    }

    /// Sends a request; answers host requests meanwhile; returns the response to it.
    pub async fn request(&mut self, msg: Message) -> Result<Message, ProtoError> {
        let mut out = Vec::new();
        let seq = self
            .session
            .as_mut()
            .unwrap()
            .seal(&msg, 0, &mut out)
            .unwrap();
        self.send_raw(&out).await;
        self.response_to(seq).await
    }

    pub async fn response_to(&mut self, seq: u32) -> Result<Message, ProtoError> {
        loop {
            let frame = read_frame(&mut self.stream)
                .await
                .ok_or(ProtoError::Unexpected)?;
            let opened = self.session.as_mut().unwrap().open(&frame)?;
            if opened.header.is_response() {
                if opened.header.corr == seq {
                    return Ok(opened.message);
                }
                continue;
            }
            self.answer_host(opened.header.seq, opened.message).await;
        }
    }

    /// Reads frames until a host request arrives, answers it and returns it.
    pub async fn next_host_request(&mut self) -> Message {
        loop {
            let frame = read_frame(&mut self.stream).await.expect("connection open");
            let opened = self.session.as_mut().unwrap().open(&frame).unwrap();
            if !opened.header.is_response() {
                let m = opened.message.clone();
                self.answer_host(opened.header.seq, opened.message).await;
                return m;
            }
        }
    }

    async fn answer_host(&mut self, seq: u32, msg: Message) {
        let reply = match &msg {
            Message::ClockSetRequest(r) => Message::ClockSetResponse(ClockSetResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                clock: r.clock,
            }),
            Message::StatusQuery(_) => Message::StatusReport(StatusReport {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                pending_records: self.pending_records,
                clock: time(),
                blacklist_version: 0,
                params_version: 1,
                work_mode: WorkMode::Auto,
                offline_minutes: 0,
            }),
            Message::ParamsPushRequest(r) => Message::ParamsPushResponse(ParamsPushResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
                version: r.params.version,
            }),
            Message::CollectRequest(_) => Message::CollectResponse(CollectResponse {
                code: ReturnCode::SUCCESS,
                info: InfoCode::NONE,
            }),
            _ => return,
        };
        self.host_requests.push(msg);
        let mut out = Vec::new();
        self.session
            .as_mut()
            .unwrap()
            .seal(&reply, seq, &mut out)
            .unwrap();
        self.send_raw(&out).await;
    }
}

pub fn debit(card: CardNo, counter: u32, balance: Fen, amount: Fen, serial: u32) -> Message {
    Message::DebitRequest(ykt_proto::DebitRequest {
        card_no: card,
        card_type: CardType::Mf1,
        card_counter: counter,
        balance_before: balance,
        amount,
        fee: 0,
        wallet_no: 1,
        item_code: 0,
        serial,
        time: time(),
    })
}

/// An offline purchase written to the card (R-P5.6).
pub fn offline_record(
    card: CardNo,
    counter: u32,
    balance: Fen,
    amount: Fen,
    serial: u32,
) -> Record {
    Record {
        device: DEVICE,
        serial,
        kind: RecordKind::Purchase,
        status: RecordStatus::Written,
        online: false,
        card_type: CardType::Mf1,
        card_no: card,
        card_counter: counter,
        wallet_no: 1,
        balance_before: balance,
        amount,
        fee: 0,
        balance_after: balance - amount,
        time: time(),
        merchant_no: MERCHANT,
        original_serial: None,
        item_code: 0,
        tac: 0,
    }
}

/// The ledger audit of the world's store must be clean (R-H6).
pub async fn assert_audit_clean(store: &Store) {
    let store = store.clone();
    let report =
        tokio::task::spawn_blocking(move || store.read(|tx| ledger::audit(tx.conn)).unwrap())
            .await
            .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A minimal HTTP/1.1 request; returns (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    response(&resp)
}

/// An HTTP/1.1 response's (status, body).
pub fn response(resp: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
