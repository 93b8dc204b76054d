//! `ykt pos`: a POS terminal process — the terminal core bound to TCP, the journal on files,
//! card images on disk as the cards on the reader, and the keyboard (TUI) or a JSON-lines
//! script (`--headless`, `docs/pos-script.md`). User guide: `docs/pos.md`.

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDateTime;

use crate::pos::clock::Clock;
use crate::pos::driver::Driver;
use crate::pos::headless::Headless;
use crate::pos::provision::Provision;

#[derive(clap::Args)]
pub struct Args {
    /// The device provisioning file (`ykt device add`, or DATA/devices/<id>.json of the demo).
    #[arg(long)]
    pub provision: PathBuf,
    /// The terminal's flash: journal, blacklist, parameters and state. Created when missing.
    #[arg(long)]
    pub journal: PathBuf,
    /// The card keys the terminal's SAM holds (the system key file) [default: keys beside
    /// the provisioning file's directory, as the demo lays it out: DATA/keys].
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Card images to cycle through with `p` (TUI) [default: DATA/cards of the demo].
    #[arg(long)]
    pub cards: Option<PathBuf>,
    /// A top-up terminal (充值机, docs/loads.md) whatever the provisioning file's `role` says;
    /// the host must let the device take top-ups (`ykt device topup`).
    #[arg(long)]
    pub top_up: bool,
    /// JSON lines on stdin and stdout instead of the screen.
    #[arg(long)]
    pub headless: bool,
    /// Headless only: run on real time instead of the virtual clock.
    #[arg(long, requires = "headless")]
    pub real_time: bool,
    /// Headless only: the RTC at start of the virtual clock, YYYY-MM-DDTHH:MM:SS [default: now].
    #[arg(long, requires = "headless")]
    pub rtc: Option<String>,
    /// Headless only: do not power on until the script says `power_on`.
    #[arg(long, requires = "headless")]
    pub powered_off: bool,
    /// The campus's offset from UTC in hours (terminals keep local time).
    #[arg(long, default_value_t = 8, allow_hyphen_values = true)]
    pub utc_offset_hours: i32,
}

fn data_dir(a: &Args) -> Option<PathBuf> {
    // DATA/devices/<id>.json → DATA
    a.provision.parent()?.parent().map(PathBuf::from)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut provision = Provision::load(&a.provision)?;
    if a.top_up {
        provision.role = ykt_terminal::TerminalRole::TopUp;
    }
    let keys_path = match (&a.keys, data_dir(&a)) {
        (Some(k), _) => k.clone(),
        (None, Some(d)) => d.join("keys"),
        (None, None) => anyhow::bail!("--keys is needed"),
    };
    let keys = crate::cmd::keys::load(&keys_path)
        .with_context(|| format!("the card keys (--keys {})", keys_path.display()))?;
    let offset = i64::from(a.utc_offset_hours.clamp(-14, 14)) * 3600;
    let clock = if a.headless && !a.real_time {
        let rtc = match &a.rtc {
            Some(t) => NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
                .with_context(|| format!("--rtc {t:?}: YYYY-MM-DDTHH:MM:SS"))?,
            None => crate::pos::clock::local_now(offset),
        };
        Clock::virtual_at(rtc)
    } else {
        Clock::real(offset)
    };
    let driver = Driver::new(provision, keys, &a.journal, clock);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    if a.headless {
        runtime.block_on(Headless::run(driver, !a.powered_off))
    } else {
        let cards = a
            .cards
            .clone()
            .or_else(|| data_dir(&a).map(|d| d.join("cards")));
        runtime.block_on(crate::pos::tui::run(driver, cards))
    }
}
