//! Card images on disk as the cards on the reader: an MF1 1024-byte dump or a CPU card image
//! (`docs/card-layout.md`). A card carries its state from terminal to terminal, so the image
//! is written back after every card operation, atomically (temp file, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ykt_card::SimCard;
use ykt_card::cpu::CpuCard;
use ykt_card::mf1::Mf1Card;

/// MF1 1K dump size.
const DUMP_LEN: usize = 1024;
/// A CPU card image is a few KiB of text; anything larger is not a card.
const MAX_CARD_FILE: u64 = 256 * 1024;

pub fn load(path: &Path) -> anyhow::Result<SimCard> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_CARD_FILE {
        bail!("{} is too large to be a card image", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() == DUMP_LEN {
        return Ok(SimCard::Mf1(
            Mf1Card::from_dump(&bytes).with_context(|| format!("{}", path.display()))?,
        ));
    }
    let text = std::str::from_utf8(&bytes).ok().with_context(|| {
        format!(
            "{}: neither a {DUMP_LEN}-byte MF1 dump nor a CPU card image",
            path.display()
        )
    })?;
    Ok(SimCard::Cpu(
        CpuCard::from_image(text).with_context(|| format!("{}", path.display()))?,
    ))
}

pub fn image(card: &SimCard) -> Vec<u8> {
    match card {
        SimCard::Mf1(c) => c.to_dump(),
        SimCard::Cpu(c) => c.to_image().into_bytes(),
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new image.
pub fn save_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp: PathBuf = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        path.with_file_name(name)
    };
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_what_is_not_a_card_and_saves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, [0xFFu8; 10]).unwrap();
        assert!(load(&junk).is_err());
        assert!(load(&dir.path().join("missing")).is_err());
        let p = dir.path().join("card.mf1");
        save_atomic(&p, b"one").unwrap();
        save_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("card.mf1.tmp").exists());
    }
}
