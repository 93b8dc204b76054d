//! The backups `ykt serve --backup-dir` takes itself (#16): on a thread of their own, each
//! `every` after the last one ended, a backup file as `ykt backup` writes it (at the
//! background pace: the writer never waits for it), audited; then the oldest beyond
//! `keep` are deleted. Each step is logged; the metrics `ykt_backup_last_success_timestamp_seconds`
//! and `ykt_backup_failures_total` are for alarms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ykt_host::backup::{self as host_backup, Copied, Pace};

use super::DATABASE_FILE;

/// When and where: `--backup-dir`, `--backup-every`, `--backup-keep`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
    /// At least 1.
    pub keep: usize,
}

/// Backup files are `ykt-backup-<UTC time>.db`: names sort as their times.
const PREFIX: &str = "ykt-backup-";
const SUFFIX: &str = ".db";

/// The running schedule; [`Scheduler::stop`] ends it, abandoning a backup under way.
pub struct Scheduler {
    stop: Arc<AtomicBool>,
    /// Dropped to wake the thread at once.
    wake: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Scheduler {
    /// Creates the directory (mode 0700), removes what a crash left there, starts the thread.
    pub fn start(schedule: Schedule, data: PathBuf) -> anyhow::Result<Scheduler> {
        create_private_dir(&schedule.dir)?;
        for name in backup_names(&schedule.dir, &format!("{SUFFIX}.tmp"))? {
            let _ = std::fs::remove_file(schedule.dir.join(name));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<()>();
        let flag = Arc::clone(&stop);
        tracing::info!(dir = %schedule.dir.display(), every = ?schedule.every, keep = schedule.keep,
            "scheduled backups");
        let thread = std::thread::Builder::new()
            .name("ykt-backup".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = woken.recv_timeout(schedule.every) {
                    once(&schedule, &data, &flag);
                }
            })
            .context("cannot start the backup thread")?;
        Ok(Scheduler { stop, wake, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake);
        if self.thread.join().is_err() {
            tracing::error!("the backup thread panicked");
        }
    }
}

/// One backup and its rotation; every outcome logged and counted.
fn once(s: &Schedule, data: &Path, stop: &AtomicBool) {
    let now = SystemTime::now();
    let path = s.dir.join(file_name(now));
    match write(data, &path, stop) {
        Ok(copied) => {
            ykt_host::server::backup_succeeded(
                now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            );
            tracing::info!(file = %path.display(), bytes = copied.bytes, pages = copied.pages,
                seconds = copied.duration.as_secs_f64(), "backup written, audit clean");
            if let Err(e) = rotate(s) {
                ykt_host::server::backup_failed();
                tracing::error!(dir = %s.dir.display(), error = format!("{e:#}"),
                    "cannot delete old backups");
            }
        }
        Err(_) if stop.load(Ordering::Relaxed) => {
            tracing::info!(file = %path.display(), "backup abandoned: shutting down");
        }
        Err(e) => {
            ykt_host::server::backup_failed();
            tracing::error!(file = %path.display(), error = format!("{e:#}"), "backup failed");
        }
    }
}

/// A backup file with the data directory's carried files, then its audit. One whose audit
/// is not clean stays (it shows the books as they were) but counts as a failure.
fn write(data: &Path, path: &Path, stop: &AtomicBool) -> anyhow::Result<Copied> {
    let carried = crate::cmd::backup::carried_files(data)?;
    let copied = host_backup::backup(
        &data.join(DATABASE_FILE),
        path,
        &carried.files,
        Pace::BACKGROUND,
        stop,
    )?;
    let report = host_backup::audit_file(path).context("cannot audit the backup")?;
    if !report.is_clean() {
        bail!("written, but its audit is not clean: {report:?}");
    }
    Ok(copied)
}

/// Deletes the oldest backup files beyond `keep`.
fn rotate(s: &Schedule) -> anyhow::Result<()> {
    let names = backup_names(&s.dir, SUFFIX)?;
    let excess = names.len().saturating_sub(s.keep);
    for name in &names[..excess] {
        let path = s.dir.join(name);
        std::fs::remove_file(&path).with_context(|| format!("cannot delete {}", path.display()))?;
        tracing::info!(file = %path.display(), keep = s.keep, "old backup deleted");
    }
    Ok(())
}

/// The names of `dir`'s backup files ending in `suffix`, oldest first.
fn backup_names(dir: &Path, suffix: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with(PREFIX) && name.ends_with(suffix) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// `ykt-backup-20261202T004800.123Z.db`.
fn file_name(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(0);
    let time = chrono::DateTime::from_timestamp(secs, since.subsec_nanos()).unwrap_or_default();
    format!("{PREFIX}{}{SUFFIX}", time.format("%Y%m%dT%H%M%S%.3fZ"))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create backup directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    // #16: backup files are named by their UTC time, so names sort as times.
    #[test]
    fn names_sort_as_times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_172_480_123);
        assert_eq!(file_name(t), "ykt-backup-20261202T004800.123Z.db");
        let later = file_name(t + Duration::from_millis(900));
        let much_later = file_name(t + Duration::from_secs(86_400 * 40));
        assert!(file_name(t) < later && later < much_later);
    }

    // #16: rotation deletes the oldest beyond keep, and only backup files.
    #[test]
    fn rotation_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(
                dir.path()
                    .join(format!("{PREFIX}2026120{i}T000000.000Z{SUFFIX}")),
                b"x",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let s = Schedule {
            dir: dir.path().to_owned(),
            every: Duration::from_secs(1),
            keep: 2,
        };
        rotate(&s).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "notes.txt",
                "ykt-backup-20261203T000000.000Z.db",
                "ykt-backup-20261204T000000.000Z.db"
            ]
        );
    }
}
