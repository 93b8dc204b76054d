//! The writer's cache of configuration rows (FEPs, merchants, devices): an online debit
//! reads all three, and they change only by administration. Every write to them bumps
//! `meta.config_version` in its transaction (by trigger, schema V4); a writer checks the
//! version when a batch begins, so a change by another process (PostgreSQL scale-out) is
//! seen by the next batch, and drops the cache for the rest of a batch in which one of
//! its own jobs changed configuration (that job may still be rolled back).

use std::collections::HashMap;

use ykt_proto::{MerchantNo, PhysicalId};

use crate::error::Result;
use crate::ledger::Tx;
use crate::model::{Device, Fep, Merchant};
use crate::repo;
use crate::sql::Conn;

/// Rows kept at most per table; beyond, the table's cache starts over (a campus has a few
/// thousand terminals: the bound only stops a pathological growth).
const MAX_ROWS: usize = 100_000;

#[derive(Default)]
pub struct ConfigCache {
    /// The `config_version` the rows were read under; `None`: unknown, nothing cached.
    version: Option<i64>,
    feps: HashMap<u32, Option<Fep>>,
    merchants: HashMap<MerchantNo, Option<Merchant>>,
    devices: HashMap<PhysicalId, Option<Device>>,
    /// Maintenance mode (code 8) as read under `version`: setting it moves the version.
    maintenance: Option<bool>,
}

impl ConfigCache {
    /// At the start of a batch, inside its transaction: keeps the rows if configuration
    /// has not changed since they were read.
    pub fn check(&mut self, conn: &mut dyn Conn) -> Result<()> {
        let version = repo::meta(conn, "config_version")?;
        if self.version != Some(version) {
            self.clear();
            self.version = Some(version);
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.version = None;
        self.feps.clear();
        self.merchants.clear();
        self.devices.clear();
        self.maintenance = None;
    }
}

/// The row under `key` in `table` of the writer's cache, read by `read` on a miss; straight
/// from `read` when the transaction has no cache.
fn cached<K, V>(
    tx: &mut Tx<'_>,
    table: fn(&mut ConfigCache) -> &mut HashMap<K, Option<V>>,
    key: K,
    read: impl FnOnce(&mut dyn Conn) -> Result<Option<V>>,
) -> Result<Option<V>>
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    let Some(cache) = tx.cache.as_deref_mut() else {
        return read(tx.conn);
    };
    let map = table(cache);
    if let Some(hit) = map.get(&key) {
        return Ok(hit.clone());
    }
    let row = read(tx.conn)?;
    if map.len() >= MAX_ROWS {
        map.clear();
    }
    map.insert(key, row.clone());
    Ok(row)
}

impl Tx<'_> {
    /// Whether maintenance mode is on (R-B9), from the writer's cache when it has one: an
    /// online request costs no query for it.
    pub fn maintenance(&mut self) -> Result<bool> {
        let read = |conn: &mut dyn Conn| Ok(repo::meta(conn, "maintenance")? != 0);
        let Some(cache) = self.cache.as_deref_mut() else {
            return read(self.conn);
        };
        if let Some(on) = cache.maintenance {
            return Ok(on);
        }
        let on = read(self.conn)?;
        if cache.version.is_some() {
            cache.maintenance = Some(on);
        }
        Ok(on)
    }

    /// A FEP as `repo::fep_get` reads it, from the writer's cache when it has one.
    pub fn fep(&mut self, id: u32) -> Result<Option<Fep>> {
        cached(self, |c| &mut c.feps, id, |conn| repo::fep_get(conn, id))
    }

    /// A merchant as `repo::merchant_get` reads it, from the writer's cache when it has one.
    pub fn merchant(&mut self, no: MerchantNo) -> Result<Option<Merchant>> {
        cached(
            self,
            |c| &mut c.merchants,
            no,
            |conn| repo::merchant_get(conn, no),
        )
    }

    /// A device as `repo::device_get` reads it, from the writer's cache when it has one.
    /// A cached row carries no `last_report`: status reports change without a version bump,
    /// so the monitoring view must read the table itself.
    pub fn device(&mut self, id: PhysicalId) -> Result<Option<Device>> {
        cached(
            self,
            |c| &mut c.devices,
            id,
            |conn| {
                Ok(repo::device_get(conn, id)?.map(|d| Device {
                    last_report: None,
                    ..d
                }))
            },
        )
    }
}
