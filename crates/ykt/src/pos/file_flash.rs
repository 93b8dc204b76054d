//! The terminal's flash as files: one file per region in a directory, written with
//! positioned writes and made durable with `fdatasync`. Creating a file also syncs the
//! directory, so that the new entry itself survives a power cut.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ykt_terminal::storage::flash::MAX_REGION_SIZE;
use ykt_terminal::{Flash, FlashError, Region};

pub struct FileFlash {
    dir: PathBuf,
    files: [Option<File>; 4],
}

fn io_error(region: Region, e: io::Error) -> FlashError {
    FlashError::Io {
        region,
        message: e.to_string(),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FileFlash {
    /// Uses (and creates, durably) the directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<FileFlash> {
        let dir = dir.into();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(FileFlash {
            dir,
            files: [None, None, None, None],
        })
    }

    pub fn path(&self, region: Region) -> PathBuf {
        self.dir.join(format!("{}.bin", region.name()))
    }

    fn file(&mut self, region: Region) -> Result<&mut File, FlashError> {
        let slot = Region::ALL
            .iter()
            .position(|&r| r == region)
            .unwrap_or_default();
        if self.files[slot].is_none() {
            let path = self.path(region);
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    sync_dir(&self.dir).map_err(|e| io_error(region, e))?;
                    file
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_error(region, e))?,
                Err(e) => return Err(io_error(region, e)),
            };
            self.files[slot] = Some(file);
        }
        self.files[slot]
            .as_mut()
            .ok_or_else(|| io_error(region, io::Error::other("file not open")))
    }
}

impl Flash for FileFlash {
    fn size(&mut self, region: Region) -> Result<u64, FlashError> {
        let file = self.file(region)?;
        file.metadata()
            .map(|m| m.len())
            .map_err(|e| io_error(region, e))
    }

    fn read(&mut self, region: Region, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        let size = self.size(region)?;
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(FlashError::OutOfBounds {
                region,
                offset,
                len,
                size,
            });
        }
        self.file(region)?
            .read_exact_at(buf, offset)
            .map_err(|e| io_error(region, e))
    }

    fn write(&mut self, region: Region, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        let size = self.size(region)?;
        let len = data.len() as u64;
        if offset > size || offset.saturating_add(len) > MAX_REGION_SIZE {
            return Err(FlashError::OutOfBounds {
                region,
                offset,
                len,
                size,
            });
        }
        self.file(region)?
            .write_all_at(data, offset)
            .map_err(|e| io_error(region, e))
    }

    fn truncate(&mut self, region: Region, len: u64) -> Result<(), FlashError> {
        if len < self.size(region)? {
            self.file(region)?
                .set_len(len)
                .map_err(|e| io_error(region, e))?;
        }
        Ok(())
    }

    fn sync(&mut self, region: Region) -> Result<(), FlashError> {
        // fdatasync also flushes the file size, which is all the metadata reads depend on.
        self.file(region)?
            .sync_data()
            .map_err(|e| io_error(region, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::NaiveDate;
    use ykt_proto::{CardNo, CardType, PhysicalId, Record, RecordKind, RecordStatus};
    use ykt_terminal::{BlacklistChange, BlacklistStore, Journal, JournalConfig};

    #[test]
    fn regions_are_files_that_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut flash = FileFlash::open(dir.path().join("flash")).unwrap();
        assert_eq!(flash.size(Region::State).unwrap(), 0);
        flash.write(Region::State, 0, b"hello").unwrap();
        flash.write(Region::State, 5, b" world").unwrap();
        assert!(matches!(
            flash.write(Region::State, 20, b"x"),
            Err(FlashError::OutOfBounds { .. })
        ));
        flash.sync(Region::State).unwrap();
        flash.truncate(Region::State, 5).unwrap();
        flash.sync(Region::State).unwrap();
        drop(flash);
        let mut flash = FileFlash::open(dir.path().join("flash")).unwrap();
        let mut buf = [0u8; 5];
        flash.read(Region::State, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(matches!(
            flash.read(Region::State, 1, &mut buf),
            Err(FlashError::OutOfBounds { .. })
        ));
        assert!(flash.path(Region::Journal).ends_with("journal.bin"));
    }

    // R-P5.2: the journal on files: a record appended survives closing and reopening.
    #[test]
    fn journal_and_blacklist_on_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = JournalConfig::with_segment_size(4096, 64);
        let record = Record {
            device: PhysicalId([1, 2, 3, 4]),
            serial: 0,
            kind: RecordKind::Purchase,
            status: RecordStatus::NotWritten,
            online: false,
            card_type: CardType::Mf1,
            card_no: CardNo::new(9).unwrap(),
            card_counter: 1,
            wallet_no: 1,
            balance_before: 500,
            amount: 100,
            fee: 0,
            balance_after: 400,
            time: NaiveDate::from_ymd_opt(2026, 3, 1)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap(),
            merchant_no: 1,
            original_serial: None,
            item_code: 0,
            tac: 0,
        };
        {
            let mut flash = FileFlash::open(dir.path()).unwrap();
            let (mut journal, report) = Journal::open(&mut flash, cfg).unwrap();
            assert!(report.formatted);
            assert_eq!(journal.append(&mut flash, record.clone()).unwrap(), 1);
            journal
                .set_status(&mut flash, 1, RecordStatus::Written)
                .unwrap();
            let mut blacklist = BlacklistStore::open(&mut flash).unwrap();
            let change = BlacklistChange {
                card: CardNo::new(9).unwrap(),
                listed: true,
            };
            blacklist
                .apply_incremental(&mut flash, 0, 1, &[change])
                .unwrap();
        }
        let mut flash = FileFlash::open(dir.path()).unwrap();
        let (journal, _) = Journal::open(&mut flash, cfg).unwrap();
        assert_eq!(journal.get(1).unwrap().status, RecordStatus::Written);
        assert_eq!(journal.next_serial(), 2);
        let blacklist = BlacklistStore::open(&mut flash).unwrap();
        assert!(blacklist.contains(CardNo::new(9).unwrap()));
    }
}
