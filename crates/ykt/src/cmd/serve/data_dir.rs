//! The data directory of one start of `ykt serve`: what this start created is removed again
//! when the start fails, and only that. A directory that did not exist goes entirely; in one
//! that existed, the entries that were not there before go (the database file a start
//! migrated stays: it was there).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct StartedDir {
    path: PathBuf,
    before: Before,
}

/// What the directory held before this start.
enum Before {
    /// Nothing: this start created it.
    Absent,
    /// These entries (file and directory names).
    Entries(BTreeSet<OsString>),
    /// The start succeeded: keep everything.
    Kept,
}

impl StartedDir {
    /// Creates `path` if needed, noting what it held.
    pub fn create(path: &Path) -> anyhow::Result<StartedDir> {
        let before = match std::fs::read_dir(path) {
            Ok(entries) => Before::Entries(
                entries
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("cannot list {}", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Before::Absent,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let dir = StartedDir {
            path: path.to_owned(),
            before,
        };
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create data directory {}", path.display()))?;
        Ok(dir)
    }

    /// The start succeeded: nothing is removed.
    pub fn keep(mut self) {
        self.before = Before::Kept;
    }

    fn undo(&self) -> std::io::Result<()> {
        match &self.before {
            Before::Kept => Ok(()),
            Before::Absent => std::fs::remove_dir_all(&self.path),
            Before::Entries(old) => {
                for entry in std::fs::read_dir(&self.path)? {
                    let entry = entry?;
                    if old.contains(&entry.file_name()) {
                        continue;
                    }
                    if entry.file_type()?.is_dir() {
                        std::fs::remove_dir_all(entry.path())?;
                    } else {
                        std::fs::remove_file(entry.path())?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Drop for StartedDir {
    fn drop(&mut self) {
        if let Err(e) = self.undo() {
            tracing::error!(path = %self.path.display(), error = %e,
                "failed start: cannot remove what it created");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names(p: &Path) -> BTreeSet<OsString> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    // issue 10.10: a failed start removes what it created, only that.
    #[test]
    fn a_failed_start_removes_only_what_it_created() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("fresh");
        let d = StartedDir::create(&fresh).unwrap();
        std::fs::write(fresh.join("ykt.db"), b"x").unwrap();
        drop(d);
        assert!(!fresh.exists());

        let old = tmp.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("ykt.db"), b"mine").unwrap();
        let before = names(&old);
        let d = StartedDir::create(&old).unwrap();
        std::fs::write(old.join("admin-token"), b"t").unwrap();
        std::fs::create_dir(old.join("devices")).unwrap();
        std::fs::write(old.join("devices/1.json"), b"{}").unwrap();
        drop(d);
        assert_eq!(names(&old), before);
        assert_eq!(std::fs::read(old.join("ykt.db")).unwrap(), b"mine");

        let kept = tmp.path().join("kept");
        let d = StartedDir::create(&kept).unwrap();
        std::fs::write(kept.join("ykt.db"), b"x").unwrap();
        d.keep();
        assert!(kept.join("ykt.db").exists());
    }
}
