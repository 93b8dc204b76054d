//! `ykt audit`: the books balance, every account equals the sum of its transfers, every
//! card mirror equals its account, no record is booked twice (R-H6). Exit 0 only when all hold.

use std::path::PathBuf;

use ykt_host::AuditReport;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "ykt-data")]
    pub data: PathBuf,
    #[arg(long)]
    pub database: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let store = super::serve::open_store(&a.data, a.database.as_deref())?;
    let r = store.read(|tx| ykt_host::ledger::audit(tx.conn))?;
    if !print(&r) {
        std::process::exit(1)
    }
    Ok(())
}

/// Prints what an audit found; whether the books are clean.
pub fn print(r: &AuditReport) -> bool {
    println!(
        "accounts {}, transfers {}, sum of balances {}",
        r.accounts, r.transfers, r.balance_sum
    );
    let problems = [
        (
            "accounts differing from their transfers",
            r.account_mismatches.len(),
        ),
        (
            "cards differing from their accounts",
            r.card_mismatches.len(),
        ),
        (
            "cards with a balance outside 0 to 16777215 fen",
            r.card_balances_out_of_range.len(),
        ),
        ("records booked other than once", r.record_mismatches.len()),
        ("cards with wrong counters", r.counter_mismatches.len()),
        (
            "cards with a wrong blacklist entry",
            r.blacklist_mismatches.len(),
        ),
        (
            "held records booked against their state",
            r.exception_mismatches.len(),
        ),
        (
            "deposits without their operator-journal entry (or the reverse)",
            r.journal_mismatches.len(),
        ),
        (
            "subsidy lines or batches differing from their waiting loads",
            r.subsidy_mismatches.len(),
        ),
        (
            "reconciliation states or card PINs inconsistent or without their card",
            r.reconcile_mismatches.len(),
        ),
        (
            "replacements or closures differing from their books",
            r.lifecycle_mismatches.len(),
        ),
        (
            "authorisation cards whose lock or issue record disagrees",
            r.auth_card_mismatches.len(),
        ),
        (
            "payouts, commission or merchant accounts out of order",
            r.merchant_mismatches.len(),
        ),
    ];
    for (what, n) in problems {
        if n > 0 {
            println!("{what}: {n}");
        }
    }
    if r.is_clean() {
        println!("audit clean");
    } else {
        eprintln!("audit FAILED: {r:?}");
    }
    r.is_clean()
}
