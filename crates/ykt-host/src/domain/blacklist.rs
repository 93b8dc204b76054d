//! The blacklist with versions (R-H4, R-F4.21): every change bumps the version in the same
//! transaction, under the version row's lock, so versions commit in order across processes.

use ykt_proto::CardNo;

use crate::error::{HostError, Result};
use crate::ledger::Tx;
use crate::model::CardStatus;
use crate::repo;

/// At most this many entries per page (incremental or bulk).
pub const MAX_PAGE: u32 = 10_000;

/// Whether a card in this status belongs on the blacklist.
pub fn blocks(s: CardStatus) -> bool {
    s != CardStatus::Normal
}

fn to_u32(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| HostError::Corrupt(format!("blacklist version {v}")))
}

pub fn version(tx: &mut Tx<'_>) -> Result<u32> {
    to_u32(repo::meta(tx.conn, "blacklist_version")?)
}

/// Lists or unlists a card; returns the new version.
pub fn change(tx: &mut Tx<'_>, card: CardNo, listed: bool) -> Result<u32> {
    let v = repo::bump_meta(tx.conn, "blacklist_version")?;
    repo::blacklist_set(tx.conn, card, listed, v)?;
    to_u32(v)
}

/// The net changes from `since` up to `version`: `(card, listed)` in card-number order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub version: u32,
    pub changes: Vec<(CardNo, bool)>,
    /// More changes follow: ask again with `after` = the last card of this page.
    pub more: bool,
}

pub fn changes_since(
    tx: &mut Tx<'_>,
    since: u32,
    after: Option<CardNo>,
    limit: u32,
) -> Result<Delta> {
    let limit = limit.clamp(1, MAX_PAGE);
    let version = version(tx)?;
    // Entries changed after `version` are left for the next call (they carry a newer one).
    let mut changes = repo::blacklist_changes(
        tx.conn,
        i64::from(since),
        i64::from(version),
        after,
        limit + 1,
    )?;
    let more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    Ok(Delta {
        version,
        changes,
        more,
    })
}

/// A page of the full blacklist in card-number order, with the version it reflects at least.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub version: u32,
    pub cards: Vec<CardNo>,
    pub more: bool,
}

pub fn bulk(tx: &mut Tx<'_>, after: Option<CardNo>, limit: u32) -> Result<Page> {
    let limit = limit.clamp(1, MAX_PAGE);
    let version = version(tx)?;
    let mut cards = repo::blacklist_page(tx.conn, after, limit + 1)?;
    let more = cards.len() > limit as usize;
    cards.truncate(limit as usize);
    Ok(Page {
        version,
        cards,
        more,
    })
}
