//! `ykt maintenance on|off|show`: maintenance mode (系统维护, code 8, R-B9) through the admin
//! API; setting it needs the `settings` permission (系统管理员).

use serde_json::json;

use super::client::{Api, ApiArgs, cell};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Terminals' online debits and loads get code 8 and fall back offline.
    On {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Back to normal operation.
    Off {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Whether maintenance mode is on.
    Show {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (api, mode) = match args {
        Args::On { api } => (api, Some("on")),
        Args::Off { api } => (api, Some("off")),
        Args::Show { api } => (api, None),
    };
    let api = Api::new(&api)?;
    let r = match mode {
        Some(m) => api.put("/maintenance", &json!({ "maintenance": m }))?,
        None => api.get("/maintenance")?,
    };
    api.print(&r, |r| println!("系统维护: {}", cell(r, "maintenance")))
}
