//! `ykt`: the one user-facing binary.

mod cmd;
mod logging;
mod pos;

use clap::Parser;
use cmd::{
    audit, blacklist, card, cardholder, device, exception, fep, keys, loadgen, merchant, report,
    serve,
};

#[derive(Parser)]
#[command(name = "ykt", version, about = "Campus one-card payment system")]
enum Command {
    /// Cards: images (new, show, check) and the card office via the admin API (issue, lose, info, …).
    #[command(subcommand)]
    Card(card::Args),
    /// System master keys.
    #[command(subcommand)]
    Keys(keys::Args),
    /// Run the front-end processor (terminal listener) and the admin HTTP API.
    Serve(serve::Args),
    /// Check the books: balanced, every account equals its transfers, nothing booked twice.
    Audit(audit::Args),
    /// Back up a data directory's database while `ykt serve` runs (docs/operations.md).
    Backup(cmd::backup::BackupArgs),
    /// Restore a backup into an empty data directory (docs/operations.md).
    Restore(cmd::backup::RestoreArgs),
    /// The configuration file of `ykt serve`: check it (docs/operations.md).
    #[command(subcommand)]
    Config(cmd::config::Args),
    /// Cardholders: add, show, search, import, export (admin API client).
    #[command(subcommand)]
    Cardholder(cardholder::Args),
    /// Subsidy batches: import, check, approve, issue, revoke, expire (admin API client).
    #[command(subcommand)]
    Subsidy(cmd::subsidy::Args),
    /// Top-up limits (admin API client; docs/loads.md).
    #[command(subcommand)]
    Topup(cmd::topup::Args),
    /// Operator authorisation cards 授权卡: issue, lost, freeze, disable, cancel, PIN reset
    /// (admin API client; docs/operators.md).
    #[command(subcommand)]
    Authcard(cmd::authcard::Args),
    /// Merchants: type, commission, payouts (admin API client).
    #[command(subcommand)]
    Merchant(merchant::Args),
    /// Day-end (日终): close an accounting day, show it frozen (admin API client).
    #[command(subcommand)]
    Dayend(cmd::dayend::Args),
    /// Maintenance mode: terminals get code 8 and go offline (admin API client).
    #[command(subcommand)]
    Maintenance(cmd::maintenance::Args),
    /// Terminals: register, enable, disable, list, parameters (admin API client).
    #[command(subcommand)]
    Device(device::Args),
    /// The system blacklist (admin API client).
    #[command(subcommand)]
    Blacklist(blacklist::Args),
    /// Reports: per merchant and per device, debits, fees, reversals (admin API client).
    #[command(subcommand)]
    Report(report::Args),
    /// Front-end processors: list, register, activate, deregister (admin API client).
    #[command(subcommand)]
    Fep(fep::Args),
    /// Held records: debits refused for good whose money left a card (admin API client).
    #[command(subcommand)]
    Exception(exception::Args),
    /// Load test a running host: N simulated terminals, M cards; checks the books at the end.
    Loadgen(loadgen::Args),
    /// A POS terminal: TUI for a cashier, or JSON lines with --headless (docs/pos.md).
    Pos(cmd::pos::Args),
    /// Operators, roles, passwords and API tokens (admin API client; docs/operators.md).
    #[command(subcommand)]
    Operator(cmd::operator::Args),
    /// The operator journal: who changed what, when, from where (admin API client).
    Journal(cmd::operator::JournalArgs),
    /// Sign in as an operator; keeps an API token for this server in ~/.config/ykt.
    Login(cmd::login::LoginArgs),
    /// Revoke the token `ykt login` saved for this server and forget it.
    Logout(cmd::login::LogoutArgs),
    /// The two-person rule: requests waiting for a second operator (admin API client).
    #[command(subcommand)]
    Approval(cmd::approval::Args),
    /// Your cash shift: close it (扎帐) (admin API client).
    #[command(subcommand)]
    Shift(cmd::approval::ShiftArgs),
}

fn main() -> anyhow::Result<()> {
    let command = Command::parse();
    // `serve` picks its format from its settings (flag, environment or file).
    if !matches!(command, Command::Serve(_)) {
        logging::init(logging::LogFormat::Text);
    }
    match command {
        Command::Card(args) => card::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Backup(args) => cmd::backup::backup(args),
        Command::Restore(args) => cmd::backup::restore(args),
        Command::Config(args) => cmd::config::run(args),
        Command::Cardholder(args) => cmd::client::exit_on_error(cardholder::run(args)),
        Command::Subsidy(args) => cmd::client::exit_on_error(cmd::subsidy::run(args)),
        Command::Topup(args) => cmd::client::exit_on_error(cmd::topup::run(args)),
        Command::Authcard(args) => cmd::client::exit_on_error(cmd::authcard::run(args)),
        Command::Merchant(args) => cmd::client::exit_on_error(merchant::run(args)),
        Command::Dayend(args) => cmd::client::exit_on_error(cmd::dayend::run(args)),
        Command::Maintenance(args) => cmd::client::exit_on_error(cmd::maintenance::run(args)),
        Command::Device(args) => cmd::client::exit_on_error(device::run(args)),
        Command::Blacklist(args) => cmd::client::exit_on_error(blacklist::run(args)),
        Command::Report(args) => cmd::client::exit_on_error(report::run(args)),
        Command::Fep(args) => cmd::client::exit_on_error(fep::run(args)),
        Command::Exception(args) => cmd::client::exit_on_error(exception::run(args)),
        Command::Loadgen(args) => loadgen::run(args),
        Command::Pos(args) => cmd::pos::run(args),
        Command::Operator(args) => cmd::client::exit_on_error(cmd::operator::run(args)),
        Command::Journal(args) => cmd::client::exit_on_error(cmd::operator::journal(args)),
        Command::Login(args) => cmd::client::exit_on_error(cmd::login::login(args)),
        Command::Logout(args) => cmd::client::exit_on_error(cmd::login::logout(args)),
        Command::Approval(args) => cmd::client::exit_on_error(cmd::approval::run(args)),
        Command::Shift(args) => cmd::client::exit_on_error(cmd::approval::shift(args)),
    }
}
