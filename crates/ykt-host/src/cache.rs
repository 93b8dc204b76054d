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
    }
}

fn bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_ROWS {
        map.clear();
    }
    map.insert(key, value);
}

impl Tx<'_> {
    /// A FEP as `repo::fep_get` reads it, from the writer's cache when it has one.
    pub fn fep(&mut self, id: u32) -> Result<Option<Fep>> {
        let Some(cache) = self.cache.as_deref_mut() else {
            return repo::fep_get(self.conn, id);
        };
        if let Some(hit) = cache.feps.get(&id) {
            return Ok(hit.clone());
        }
        let row = repo::fep_get(self.conn, id)?;
        bounded(&mut cache.feps, id, row.clone());
        Ok(row)
    }

    /// A merchant as `repo::merchant_get` reads it, from the writer's cache when it has one.
    pub fn merchant(&mut self, no: MerchantNo) -> Result<Option<Merchant>> {
        let Some(cache) = self.cache.as_deref_mut() else {
            return repo::merchant_get(self.conn, no);
        };
        if let Some(hit) = cache.merchants.get(&no) {
            return Ok(hit.clone());
        }
        let row = repo::merchant_get(self.conn, no)?;
        bounded(&mut cache.merchants, no, row.clone());
        Ok(row)
    }

    /// A device as `repo::device_get` reads it, from the writer's cache when it has one.
    /// A cached row carries no `last_report`: status reports change without a version bump,
    /// so the monitoring view must read the table itself.
    pub fn device(&mut self, id: PhysicalId) -> Result<Option<Device>> {
        let Some(cache) = self.cache.as_deref_mut() else {
            return repo::device_get(self.conn, id);
        };
        if let Some(hit) = cache.devices.get(&id) {
            return Ok(hit.clone());
        }
        let row = repo::device_get(self.conn, id)?.map(|d| Device {
            last_report: None,
            ..d
        });
        bounded(&mut cache.devices, id, row.clone());
        Ok(row)
    }
}
