//! `ykt keys`: system master keys (format in `docs/card-layout.md`, "Key file").

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::RngCore;
use ykt_card::keys::SystemKeys;

#[derive(clap::Subcommand)]
pub enum Args {
    /// Create a new set of random system master keys (file mode 0600).
    New {
        /// Where to write the key file; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Key generation number stored on every card issued with these keys (1–255).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        version: u8,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args {
        Args::New { out, version } => {
            let mut material = [0u8; 112];
            rand::rng().fill_bytes(&mut material);
            let keys = SystemKeys::from_material(version, &material);
            write_secret(&out, keys.to_text().as_bytes())?;
            println!(
                "wrote system master keys (version {version}) to {}",
                out.display()
            );
            Ok(())
        }
    }
}

/// Creates `path` with mode 0600 (never replacing an existing file) holding `data`,
/// atomically: a temporary file is written and synced, then hard-linked to `path` (which
/// fails if `path` exists), so nobody ever reads a partial file.
pub fn write_secret(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp); // left over by a crash
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })()
    .with_context(|| format!("cannot write {}", tmp.display()));
    let linked = written.and_then(|()| {
        std::fs::hard_link(&tmp, path)
            .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Reads and parses a key file, refusing one that others may read.
pub fn load(path: &Path) -> anyhow::Result<SystemKeys> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "key file {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
                path.display()
            );
        }
    }
    if meta.len() > ykt_card::keys::MAX_FILE_LEN as u64 {
        bail!("key file {} is too large to be a key file", path.display());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    SystemKeys::parse(&text).with_context(|| format!("key file {}", path.display()))
}
