//! `ykt blacklist show`: the system blacklist, its version and cards (R-H4).

use super::client::{Api, ApiArgs, items};

#[derive(clap::Subcommand)]
pub enum Args {
    /// The current blacklist version and the listed card numbers (first 10,000).
    Show {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Show { api } => {
            let api = Api::new(&api)?;
            let b = api.get("/blacklist")?;
            api.print(&b, |b| {
                let cards: Vec<String> = items(&b["cards"]).iter().map(|c| c.to_string()).collect();
                println!(
                    "blacklist version {}: {} card(s)",
                    b["version"],
                    cards.len()
                );
                for chunk in cards.chunks(10) {
                    println!("  {}", chunk.join(" "));
                }
                if b["more"].as_bool() == Some(true) {
                    println!("  … more (first 10,000 shown)");
                }
            })
        }
    }
}
