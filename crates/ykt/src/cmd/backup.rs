//! `ykt backup` and `ykt restore` (#16): a consistent copy of a data directory's SQLite
//! database, taken while `ykt serve` runs (`ykt_host::backup`), with the directory's other
//! files a host needs, and its way back into an empty directory. Both say what they did and
//! end with an audit of the copy. PostgreSQL has its own tools (docs/operations.md).

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use ykt_host::backup::{self as host_backup, CarriedFile, Copied, Inspection, Pace};

use super::serve::DATABASE_FILE;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The data directory of `ykt serve` (it may be serving meanwhile) [default: the
    /// `data` of `--config`, else ykt-data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The TOML file `ykt serve --config` reads: its `data` is the directory backed up.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The backup file to write (mode 0600); an existing file is never overwritten.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A file `ykt backup` (or `ykt serve --backup-dir`) wrote.
    #[arg(long)]
    pub from: PathBuf,
    /// The data directory to restore into: it must be empty or not exist.
    #[arg(long)]
    pub data: PathBuf,
}

/// What `ykt serve` keeps in its data directory besides the database, that a backup
/// carries: without them a restored host would not work as before (the system key file
/// for CPU cards' TACs, the admin token scripts use, the first administrator's initial
/// password, the demo's files). Every one is a secret or beside secrets.
const CARRIED: &[&str] = &["keys", "admin-token", "admin-password", "demo.json"];
/// Directories of the demo whose files are carried: provisioning files, card images.
const CARRIED_DIRS: &[&str] = &["devices", "cards"];
/// Entries a backup leaves out on purpose: the database (copied through SQLite's backup
/// API, never as files) and `serve.addr`, which describes a running process.
const NOT_CARRIED: &[&str] = &[
    "ykt.db",
    "ykt.db-wal",
    "ykt.db-shm",
    "ykt.db-journal",
    super::client::SERVE_ADDR_FILE,
];

/// The files of `data` a backup carries, and the entries it leaves out that are none of
/// `ykt serve`'s (reported, never copied).
pub struct Carried {
    pub files: Vec<CarriedFile>,
    pub unknown: Vec<String>,
}

pub fn carried_files(data: &Path) -> anyhow::Result<Carried> {
    let mut carried = Carried {
        files: Vec::new(),
        unknown: Vec::new(),
    };
    for name in sorted_entries(data)? {
        let path = data.join(&name);
        if CARRIED.contains(&name.as_str()) && path.is_file() {
            carried.files.push(read_carried(data, name)?);
        } else if CARRIED_DIRS.contains(&name.as_str()) && path.is_dir() {
            for inner in sorted_entries(&path)? {
                if path.join(&inner).is_file() && !inner.ends_with(".tmp") {
                    carried
                        .files
                        .push(read_carried(data, format!("{name}/{inner}"))?);
                }
            }
        } else if !NOT_CARRIED.contains(&name.as_str()) && !name.ends_with(".tmp") {
            carried.unknown.push(name);
        }
    }
    Ok(carried)
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn read_carried(data: &Path, name: String) -> anyhow::Result<CarriedFile> {
    let path = data.join(&name);
    let content =
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(CarriedFile { name, content })
}

/// Where a carried file goes back in `data`: only a name the backup carries, so a doctored
/// backup cannot write elsewhere.
fn restored_path(data: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let parts: Vec<&str> = Path::new(name)
        .components()
        .map(|c| match c {
            Component::Normal(p) => p.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    let known = match parts.as_slice() {
        [file] => CARRIED.contains(file),
        [dir, file] => CARRIED_DIRS.contains(dir) && !file.is_empty(),
        _ => false,
    };
    if !known {
        bail!("the backup carries a file `{name}` that is none of a data directory's");
    }
    Ok(data.join(name))
}

/// The data directory to back up: the flag, else the `data` of the serve configuration
/// file, else the default of `ykt serve`. A configuration on PostgreSQL is refused: this
/// backup copies the SQLite database.
fn data_dir(a: &BackupArgs) -> anyhow::Result<PathBuf> {
    let file = match &a.config {
        Some(path) => super::serve::config::read_file(path)?,
        None => super::serve::config::Options::default(),
    };
    if file.database.is_some() {
        bail!(
            "the configuration names a PostgreSQL database; ykt backup copies a SQLite data \
             directory (on PostgreSQL use pg_dump, docs/operations.md)"
        );
    }
    Ok(a.data
        .clone()
        .or(file.data)
        .unwrap_or_else(|| super::serve::config::DEFAULT_DATA.into()))
}

pub fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let data = data_dir(&a)?;
    let carried = carried_files(&data)?;
    let db = data.join(DATABASE_FILE);
    let copied = host_backup::backup(
        &db,
        &a.out,
        &carried.files,
        Pace::INTERACTIVE,
        &AtomicBool::new(false),
    )
    .with_context(|| format!("cannot back up {}", db.display()))?;
    let found = host_backup::inspect(&a.out)?;
    println!(
        "backup of {} written to {} (mode 0600)",
        db.display(),
        a.out.display()
    );
    describe(&copied, &found);
    if !carried.unknown.is_empty() {
        println!(
            "left out (not files of ykt serve): {}",
            carried.unknown.join(", ")
        );
    }
    if !carried.files.iter().any(|f| f.name == "keys") {
        println!(
            "no system key file in {}: if the host reads one elsewhere (--keys), keep a copy \
             of it apart, as safely as the backup (docs/operations.md)",
            data.display()
        );
    }
    audit(&a.out)
}

pub fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    refuse_non_empty(&a.data)?;
    let found = host_backup::inspect(&a.from)
        .with_context(|| format!("cannot restore {}", a.from.display()))?;
    let dir = super::serve::data_dir::StartedDir::create(&a.data)?;
    let db = a.data.join(DATABASE_FILE);
    let (copied, files) = host_backup::restore(&a.from, &db)
        .with_context(|| format!("cannot restore {}", a.from.display()))?;
    for f in &files {
        let path = restored_path(&a.data, &f.name)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        super::keys::write_secret(&path, &f.content)?;
    }
    println!("{} restored into {}", a.from.display(), db.display());
    describe(&copied, &found);
    if found.schema_version < found.current_version {
        println!(
            "schema version {} is older than this ykt's {}: `ykt serve` migrates it at its \
             first start",
            found.schema_version, found.current_version
        );
    }
    // Restored as the backup has it, whatever its audit says: the data stays.
    dir.keep();
    audit(&db)
}

fn refuse_non_empty(data: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(data) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: restore into an empty or new directory (nothing of \
                     a data directory is ever overwritten)",
                    data.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", data.display())),
    }
}

/// What a copy holds and how it went.
fn describe(copied: &Copied, found: &Inspection) {
    let rows: u64 = found.tables.iter().map(|(_, n)| n).sum();
    println!(
        "  {} tables, {rows} rows, {} bytes, schema version {}; {} pages in {} steps, {:.3} s",
        found.tables.len(),
        copied.bytes,
        found.schema_version,
        copied.pages,
        copied.steps,
        copied.duration.as_secs_f64()
    );
    for (table, n) in &found.tables {
        println!("    {table:<24} {n:>10}");
    }
    if found.carried.is_empty() {
        println!("  no other files of the data directory");
    } else {
        let names: Vec<&str> = found.carried.iter().map(|(n, _)| n.as_str()).collect();
        println!(
            "  files of the data directory ({}; secrets: keep the backup as safe as the keys): {}",
            names.len(),
            names.join(", ")
        );
    }
}

/// The audit of the copy at `db`; an unclean one fails the command.
fn audit(db: &Path) -> anyhow::Result<()> {
    println!("audit of the copy:");
    let report = host_backup::audit_file(db).context("cannot audit the copy")?;
    if super::audit::print(&report) {
        Ok(())
    } else {
        bail!("the audit of the copy found problems (above)")
    }
}
