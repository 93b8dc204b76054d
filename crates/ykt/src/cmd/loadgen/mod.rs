//! `ykt loadgen`: N simulated terminals with M cards against a running `ykt serve`
//! (`docs/loadgen.md`). It provisions a fresh merchant, devices and cards through the
//! admin API's bulk routes, signs every terminal in, runs a scenario for a duration or a
//! number of requests, prints throughput, latency percentiles and every error by return
//! code, then checks the host's books against its own tally: exit status 1 when a record
//! acknowledged with code 0 is missing or anything is booked twice, or when the audit fails.

mod books;
mod http;
mod loads;
mod setup;
mod stats;
mod terminal;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use ykt_proto::{CardNo, Fen, ReturnCode};

use http::AdminApi;
use stats::Stats;
use terminal::SimTerminal;
use workload::{Control, Plan, SimCard, Worker};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Online debits (R-P5.2), one request in flight per terminal.
    Online,
    /// Offline debits uploaded one record per request as they happen (R-P5.6).
    Offline,
    /// Offline records uploaded in batches of --batch (R-P5.9): record throughput.
    Upload,
    /// Every terminal signs in at the same moment (R-P5.1); nothing else.
    SigninStorm,
    /// --cards cards are reported lost, then every terminal downloads the whole
    /// blacklist in bulk as a fresh terminal does (R-F4.21).
    BlacklistInit,
    /// 70 % online debits, 25 % offline uploads, 5 % heartbeats.
    Mixed,
    /// Top-up terminals (R-B4): 75 % MF1 cash top-ups (0x08, the card write, the record's
    /// upload; --tear-rate of them torn), 25 % online debits.
    Topup,
    /// Every card has --pickup-amount waiting (a card-office deposit, R-B5): online debits,
    /// each answered 卡有补助未领 followed by 0x09 and the pick-up (0x08, write, upload).
    Pickup,
}

#[derive(clap::Args)]
pub struct Args {
    /// The admin API of the host.
    #[arg(long, env = "YKT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The host's terminal listener.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub terminal: SocketAddr,
    /// Data directory of `ykt serve`: the admin token is read from DATA/admin-token.
    #[arg(long, default_value = "ykt-data")]
    pub data: PathBuf,
    /// Admin token (instead of DATA/admin-token).
    #[arg(long, env = "YKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, value_enum, default_value = "online")]
    pub scenario: Scenario,
    /// Simulated terminals (one TCP connection each).
    #[arg(long, default_value_t = 100)]
    pub terminals: u32,
    /// Cards; each belongs to one terminal, so there must be at least one per terminal
    /// (blacklist-init: the size of the blacklist).
    #[arg(long, default_value_t = 1_000)]
    pub cards: u32,
    /// How long the measured phase runs, e.g. 60s, 2m, 500ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests in all (instead of --duration).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Pause of each terminal between two transactions, in milliseconds (0 = closed loop:
    /// every terminal sends its next request as soon as it has the answer).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Records per upload request (upload scenario; the protocol allows 64).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub batch: u16,
    /// Largest amount of one debit in fen (amounts are uniform in 1 ..= this).
    #[arg(long, default_value_t = 500)]
    pub amount_max: Fen,
    /// Opening balance of each card in fen.
    #[arg(long, default_value_t = 1_000_000)]
    pub opening_balance: Fen,
    /// Seed of the workload (amounts, card choice); provisioning is always fresh.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Merchant number for this run (default: random in 100000–999999). Must not exist.
    #[arg(long)]
    pub merchant: Option<u32>,
    /// Give up on a request after this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// The campus's offset from UTC in hours (terminal clocks are local time).
    #[arg(long, default_value_t = 8, allow_hyphen_values = true)]
    pub utc_offset_hours: i32,
    /// PID of the host process: its resident memory is reported at the end (same machine).
    #[arg(long)]
    pub host_pid: Option<u32>,
    /// Share of top-ups with a torn outcome (topup): half `CardPulled` (voided), half
    /// `Initiated` (settled by the card's next record).
    #[arg(long, default_value_t = 0.0)]
    pub tear_rate: f64,
    /// The operator whose shift the top-up terminals' cash is tallied in (topup).
    #[arg(long, default_value = "admin")]
    pub operator: String,
    /// Money deposited to wait for each card before the run (pickup), in fen.
    #[arg(long, default_value_t = 1_000)]
    pub pickup_amount: Fen,
    /// Also print the summary as one JSON object (last line of stdout).
    #[arg(long)]
    pub json: bool,
    /// No progress bar (logs, CI).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        _ => return Err(format!("bad duration unit in {s:?}: ms, s or m")),
    };
    if d.is_zero() || d > Duration::from_secs(24 * 3600) {
        return Err("a duration is between 1 ms and 24 h".into());
    }
    Ok(d)
}

static UTC_OFFSET_SECS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(8 * 3600);

/// The campus's local time: what a terminal's clock shows.
pub(crate) fn campus_now() -> NaiveDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
        + UTC_OFFSET_SECS.load(Ordering::Relaxed);
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .naive_utc()
}

pub fn run(a: Args) -> anyhow::Result<()> {
    UTC_OFFSET_SECS.store(
        i64::from(a.utc_offset_hours.clamp(-14, 14)) * 3600,
        Ordering::Relaxed,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let ok = runtime.block_on(run_async(a))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn token(a: &Args) -> anyhow::Result<String> {
    if let Some(t) = &a.token {
        return Ok(t.clone());
    }
    let path = a.data.join("admin-token");
    let t = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (give --data DIR of `ykt serve`, or --token)",
            path.display()
        )
    })?;
    Ok(t.trim().to_owned())
}

/// Returns whether the run is clean (books agree, audit clean).
async fn run_async(a: Args) -> anyhow::Result<bool> {
    if a.terminals == 0 {
        bail!("--terminals must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.tear_rate) {
        bail!("--tear-rate is 0 to 1");
    }
    if a.amount_max < 1 {
        bail!("--amount-max must be at least 1 fen");
    }
    let uses_cards = !matches!(a.scenario, Scenario::SigninStorm);
    if uses_cards && a.scenario != Scenario::BlacklistInit && a.cards < a.terminals {
        bail!(
            "--cards ({}) must be at least --terminals ({}): each card belongs to one terminal",
            a.cards,
            a.terminals
        );
    }
    let api = AdminApi::new(&a.server, token(&a)?)?;
    let merchant = a
        .merchant
        .unwrap_or_else(|| rand::random_range(100_000..=999_999));
    let timeout = Duration::from_millis(a.timeout_ms.max(1));

    // ---- setup -------------------------------------------------------------------------
    let t0 = Instant::now();
    setup::merchant(&api, merchant).await?;
    let devices = setup::devices(&api, merchant, a.terminals).await?;
    eprintln!(
        "setup: merchant {merchant}, {} devices from {:08X} in {:.1} s",
        devices.len(),
        setup::first_device(merchant),
        t0.elapsed().as_secs_f64()
    );
    let cards: Vec<CardNo> = if uses_cards {
        let t1 = Instant::now();
        let cards = setup::cards(&api, a.cards, a.opening_balance).await?;
        eprintln!(
            "setup: {} cards in {:.1} s",
            cards.len(),
            t1.elapsed().as_secs_f64()
        );
        cards
    } else {
        Vec::new()
    };
    if a.scenario == Scenario::Topup {
        let t1 = Instant::now();
        setup::top_up_devices(&api, &devices, &a.operator).await?;
        eprintln!(
            "setup: {} top-up devices for operator {} in {:.1} s",
            devices.len(),
            a.operator,
            t1.elapsed().as_secs_f64()
        );
    }
    if a.scenario == Scenario::Pickup {
        let t1 = Instant::now();
        setup::deposits(&api, merchant, &cards, a.pickup_amount).await?;
        eprintln!(
            "setup: {} fen waiting for each of {} cards in {:.1} s",
            a.pickup_amount,
            cards.len(),
            t1.elapsed().as_secs_f64()
        );
    }
    if a.scenario == Scenario::BlacklistInit {
        let t1 = Instant::now();
        let v = setup::lose_all(&api, &cards).await?;
        eprintln!(
            "setup: {} cards reported lost (blacklist version {v}) in {:.1} s",
            cards.len(),
            t1.elapsed().as_secs_f64()
        );
    }

    // ---- connect and sign in (the storm is this phase) -------------------------------------
    let storm = sign_in_all(&a, &devices, timeout).await;
    let (terms, signin) = storm?;
    print_signin(&signin, devices.len());

    // ---- measured phase ----------------------------------------------------------------
    let mut total = Stats::default();
    let elapsed;
    let records;
    match a.scenario {
        Scenario::SigninStorm => {
            elapsed = signin.wall;
            records = 0;
            total.merge(&signin.stats);
        }
        Scenario::BlacklistInit => {
            let (e, s) = blacklist_init(terms, &cards).await;
            elapsed = e;
            records = 0;
            total.merge(&s);
        }
        _ => {
            let (e, r, s) = measured(&a, merchant, terms, &cards).await;
            elapsed = e;
            records = r;
            total.merge(&s);
        }
    }
    print_results(&a, &total, elapsed, records);
    if let Some(pid) = a.host_pid {
        print_rss(pid);
    }

    // ---- the books ---------------------------------------------------------------------
    let ok = verify(&api, merchant, &total).await?;
    if a.json {
        println!("{}", summary_json(&a, &total, elapsed, records, ok));
    }
    Ok(ok)
}

struct SignIn {
    stats: Stats,
    /// From the common start until the last terminal was signed in.
    wall: Duration,
    failed: usize,
}

/// Connects every terminal, then releases them together: each signs in; their latencies
/// and the time until the last one is in are measured.
async fn sign_in_all(
    a: &Args,
    devices: &[setup::Device],
    timeout: Duration,
) -> anyhow::Result<(Vec<(usize, SimTerminal)>, SignIn)> {
    let barrier = Arc::new(Barrier::new(devices.len() + 1));
    let mut set = JoinSet::new();
    for (i, d) in devices.iter().enumerate() {
        let (addr, id, key, barrier) = (a.terminal, d.id, d.key, Arc::clone(&barrier));
        set.spawn(async move {
            let conn = SimTerminal::connect(addr, id, key, timeout).await;
            barrier.wait().await;
            let mut term = conn?;
            let started = Instant::now();
            let code = term.sign_in(campus_now(), 0).await?;
            Ok::<_, terminal::Transport>((i, term, code, started.elapsed(), Instant::now()))
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut terms = Vec::with_capacity(devices.len());
    let mut last = start;
    let mut failed = 0;
    while let Some(joined) = set.join_next().await {
        match joined.context("a terminal task panicked")? {
            Ok((i, term, code, took, at)) => {
                stats.record(took, code);
                if code == ReturnCode::SUCCESS {
                    last = last.max(at);
                    terms.push((i, term));
                } else {
                    failed += 1;
                }
            }
            Err(e) => {
                stats.fail(e.label());
                failed += 1;
            }
        }
    }
    terms.sort_by_key(|(i, _)| *i);
    Ok((
        terms,
        SignIn {
            stats,
            wall: last - start,
            failed,
        },
    ))
}

fn print_signin(s: &SignIn, n: usize) {
    println!(
        "sign-in: {} of {n} terminals signed in within {:.1} ms of a common start; {}",
        n - s.failed,
        s.wall.as_secs_f64() * 1000.0,
        s.stats.percentiles()
    );
    for l in s.stats.error_lines() {
        println!("{l}");
    }
}

/// Online / offline / upload / mixed: every terminal runs its loop; a progress bar shows
/// the rate meanwhile.
async fn measured(
    a: &Args,
    merchant: u32,
    terms: Vec<(usize, SimTerminal)>,
    cards: &[CardNo],
) -> (Duration, u64, Stats) {
    let n = terms.len().max(1);
    let plan = Arc::new(Plan {
        scenario: a.scenario,
        merchant,
        think: Duration::from_millis(a.think_ms),
        amount_max: a.amount_max,
        batch: match a.scenario {
            Scenario::Upload => usize::from(a.batch),
            _ => 1,
        },
        tear_rate: a.tear_rate,
    });
    let ctl = Arc::new(Control {
        stop: AtomicBool::new(false),
        started: AtomicU64::new(0),
        done: AtomicU64::new(0),
        records: AtomicU64::new(0),
        limit: a.requests,
    });
    let mut set = JoinSet::new();
    let start = Instant::now();
    for (i, term) in terms {
        // Card k belongs to terminal k mod N.
        let own: Vec<SimCard> = cards
            .iter()
            .skip(i)
            .step_by(n)
            .map(|&no| SimCard {
                no,
                counter: 0,
                balance: a.opening_balance,
                retired: false,
                subsidy_seq: 0,
                unsettled: None,
            })
            .collect();
        let w = Worker::new(
            term,
            own,
            a.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        );
        set.spawn(w.run(Arc::clone(&plan), Arc::clone(&ctl)));
    }
    let bar = progress(a);
    let deadline = (a.requests.is_none()).then(|| start + a.duration);
    let mut total = Stats::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let (mut last_done, mut last_at) = (0u64, Instant::now());
    loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                Some(Ok(s)) => total.merge(&s),
                Some(Err(e)) => { total.fail("terminal task failed"); tracing::error!(error = %e, "terminal task failed"); }
                None => break,
            },
            _ = tick.tick() => {
                let done = ctl.done.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
                (last_done, last_at) = (done, now);
                match (deadline, a.requests) {
                    (Some(_), _) => bar.set_position(start.elapsed().as_secs().min(a.duration.as_secs())),
                    (None, Some(_)) => bar.set_position(done),
                    _ => {}
                }
                bar.set_message(format!("{done} requests · {} records · {rate:.0}/s",
                    ctl.records.load(Ordering::Relaxed)));
                if deadline.is_some_and(|d| now >= d) {
                    ctl.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    (elapsed, ctl.records.load(Ordering::Relaxed), total)
}

fn progress(a: &Args) -> ProgressBar {
    if a.quiet {
        return ProgressBar::hidden();
    }
    let (len, unit) = match a.requests {
        Some(k) => (k, "requests"),
        None => (a.duration.as_secs().max(1), "s"),
    };
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Every terminal downloads the whole blacklist at once; each download is one sample.
async fn blacklist_init(terms: Vec<(usize, SimTerminal)>, cards: &[CardNo]) -> (Duration, Stats) {
    let cards: Arc<Vec<CardNo>> = Arc::new(cards.to_vec());
    let start = Instant::now();
    let mut set = JoinSet::new();
    for (_, mut term) in terms {
        let cards = Arc::clone(&cards);
        set.spawn(async move {
            let t = Instant::now();
            let r = workload::bulk_blacklist(&mut term, &cards).await;
            (t.elapsed(), r)
        });
    }
    let mut stats = Stats::default();
    while let Some(j) = set.join_next().await {
        match j {
            Ok((took, Ok((version, listed)))) => {
                println!(
                    "blacklist: version {version}, {listed} of {} cards listed, downloaded in {:.0} ms",
                    cards.len(),
                    took.as_secs_f64() * 1000.0
                );
                if listed == cards.len() {
                    stats.record(took, ReturnCode::SUCCESS);
                } else {
                    stats.record(took, ReturnCode::OTHER_ERROR);
                }
            }
            Ok((_, Err(e))) => {
                println!("blacklist download failed: {e}");
                stats.fail("blacklist download failed");
            }
            Err(_) => stats.fail("terminal task failed"),
        }
    }
    (start.elapsed(), stats)
}

fn print_results(a: &Args, s: &Stats, elapsed: Duration, records: u64) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let answered = s.answered();
    println!(
        "{:?}: {} terminals, think {} ms, {:.1} s: {answered} requests ({:.0}/s), {records} records booked ({:.0}/s)",
        a.scenario,
        a.terminals,
        a.think_ms,
        secs,
        answered as f64 / secs,
        records as f64 / secs
    );
    println!("latency: {}", s.percentiles());
    if matches!(a.scenario, Scenario::Topup | Scenario::Pickup) {
        let (t, p) = (s.top_ups, s.pick_ups);
        println!(
            "loads: {} top-ups ({:.1}/s, {} fen), {} voided, {} in doubt; {} pick-ups ({:.1}/s, {} fen)",
            t.posted.records,
            t.posted.records as f64 / secs,
            t.posted.amount,
            t.voided.records,
            t.uncertain.records,
            p.posted.records,
            p.posted.records as f64 / secs,
            p.posted.amount
        );
        println!("load authorisation (0x08): {}", s.load_percentiles());
    }
    let errors = s.errors();
    println!("errors: {errors}");
    for l in s.error_lines() {
        println!("{l}");
    }
}

fn print_rss(pid: u32) {
    let path = format!("/proc/{pid}/status");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let field = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name))
                    .map(|l| l[name.len()..].trim().to_owned())
                    .unwrap_or_else(|| "?".into())
            };
            println!(
                "host memory: VmRSS {} (peak VmHWM {})",
                field("VmRSS:"),
                field("VmHWM:")
            );
        }
        Err(e) => println!("host memory: cannot read {path}: {e}"),
    }
}

/// Compares the host's books with the tally and runs the audit; prints the verdict.
async fn verify(api: &AdminApi, merchant: u32, s: &Stats) -> anyhow::Result<bool> {
    let v = api.get_ok(&format!("/bulk/books/{merchant}")).await?;
    let host = books::HostBooks::from_json(&v).context("unexpected books answer")?;
    let mut problems = books::compare(s.acked, s.uncertain, host);
    let loads = books::LoadBooks::from_json(&v["loads"]).context("unexpected loads answer")?;
    problems.extend(books::compare_loads(s.top_ups, s.pick_ups, &loads));
    println!("loads: host {loads}");
    println!(
        "books: acknowledged {} records / {} fen, unanswered {} / {} fen; host booked {} / {} fen, merchant {merchant} balance {} fen",
        s.acked.records,
        s.acked.amount,
        s.uncertain.records,
        s.uncertain.amount,
        host.records,
        host.amount,
        host.merchant_balance
    );
    let audit = api.get_ok("/audit").await?;
    let clean = audit["clean"].as_bool().unwrap_or(false);
    for p in &problems {
        println!("{p}");
    }
    if !clean {
        println!("AUDIT FAILED: {}", audit["report"]);
    }
    let ok = problems.is_empty() && clean;
    println!(
        "verdict: {}",
        if ok {
            "books agree, audit clean"
        } else {
            "FAILED"
        }
    );
    Ok(ok)
}

/// The run's figures as one JSON object (`--json`).
fn summary_json(
    a: &Args,
    s: &Stats,
    elapsed: Duration,
    records: u64,
    ok: bool,
) -> serde_json::Value {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let q = |h, p| Stats::quantile_ms(h, p);
    serde_json::json!({
        "scenario": format!("{:?}", a.scenario),
        "terminals": a.terminals,
        "seconds": secs,
        "requests": s.answered(),
        "requests_per_s": s.answered() as f64 / secs,
        "records": records,
        "records_per_s": records as f64 / secs,
        "p50_ms": q(&s.latency, 0.5),
        "p99_ms": q(&s.latency, 0.99),
        "errors": s.errors(),
        "top_ups": s.top_ups.posted.records,
        "top_ups_per_s": s.top_ups.posted.records as f64 / secs,
        "top_ups_voided": s.top_ups.voided.records,
        "pick_ups": s.pick_ups.posted.records,
        "pick_ups_per_s": s.pick_ups.posted.records as f64 / secs,
        "load_p50_ms": q(&s.load_latency, 0.5),
        "load_p99_ms": q(&s.load_latency, 0.99),
        "books_ok": ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "0s", "x", "5h", "-1s", "99999999m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
