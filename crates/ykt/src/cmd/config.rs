//! `ykt config check FILE` (#16): validates a configuration file of `ykt serve` and prints
//! the configuration it would run with here (the file under this environment's `YKT_*`
//! variables, over the defaults), each setting with where it comes from, passwords masked.

use std::path::PathBuf;

use clap::Parser;

use super::serve::config::{self, Options};

#[derive(clap::Subcommand)]
pub enum Args {
    /// Validate a configuration file; print the effective configuration (secrets masked).
    Check {
        /// The TOML file, as `ykt serve --config FILE` reads it.
        file: PathBuf,
    },
}

/// The serve settings of the environment alone: clap reads the `YKT_*` variables of a
/// command line without flags.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct Environment {
    #[command(flatten)]
    options: Options,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::Check { file } => check(file),
    }
}

fn check(file: PathBuf) -> anyhow::Result<()> {
    let from_file = config::read_file(&file)?;
    let from_env = Environment::try_parse_from(Vec::<String>::new())
        .map_err(|e| anyhow::anyhow!("YKT_* environment: {}", e.to_string().trim_end()))?
        .options;
    let settings = config::resolve(from_env.clone().over(from_file.clone()))?;
    println!(
        "# {}: valid. `ykt serve --config {}` runs with (flags would override):",
        file.display(),
        file.display()
    );
    let (env, file_entries) = (from_env.entries(), from_file.entries());
    for (i, (key, value)) in settings.as_options().entries().into_iter().enumerate() {
        let source = if env[i].1.is_some() {
            format!("environment {}", config::env_name(key))
        } else if file_entries[i].1.is_some() {
            "file".to_owned()
        } else {
            "default".to_owned()
        };
        match value {
            Some(v) => println!("{key} = {v}  # {source}"),
            None => println!("# {key}: not set"),
        }
    }
    Ok(())
}
