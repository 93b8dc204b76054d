//! Which terminal is connected where: `PhysicalId → connection`, so an operator's change
//! reaches the terminal (parameter push) and monitoring can ask for status. With several
//! host processes on one PostgreSQL database a push reaches only terminals connected to
//! this process; the others learn the new parameter version from their next heartbeat.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{NaiveDateTime, TimeDelta};
use tokio::sync::mpsc;
use ykt_proto::{CardNo, PhysicalId, TerminalParams};

/// A host-initiated request for a connected terminal.
#[derive(Clone, Debug)]
pub enum Command {
    /// Parameter push (0x44) after an operator changed the device.
    PushParams(Box<TerminalParams>),
    /// Record collection order (0x43, R-F4.17).
    Collect { card: CardNo, count: u8 },
    /// Status query (0x42, R-F4.20).
    QueryStatus,
    /// Clock setting (0x41, R-F4.19).
    SetClock,
}

#[derive(Clone)]
struct Entry {
    conn: u64,
    tx: mpsc::Sender<Command>,
}

#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<PhysicalId, Entry>>>);

impl Registry {
    pub(crate) fn insert(&self, device: PhysicalId, conn: u64, tx: mpsc::Sender<Command>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(device, Entry { conn, tx });
        }
    }

    /// Removes the entry only if it still belongs to connection `conn` (a newer sign-in of
    /// the same terminal on another connection keeps its own).
    pub(crate) fn remove(&self, device: PhysicalId, conn: u64) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        if m.get(&device).is_some_and(|e| e.conn == conn) {
            m.remove(&device);
            true
        } else {
            false
        }
    }

    pub fn is_connected(&self, device: PhysicalId) -> bool {
        self.0.lock().is_ok_and(|m| m.contains_key(&device))
    }

    pub fn connected(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }

    /// Hands `cmd` to the terminal's connection; false when it is not connected here or
    /// its command queue is full.
    pub fn send(&self, device: PhysicalId, cmd: Command) -> bool {
        let tx = match self.0.lock() {
            Ok(m) => m.get(&device).map(|e| e.tx.clone()),
            Err(_) => None,
        };
        tx.is_some_and(|tx| tx.try_send(cmd).is_ok())
    }
}

/// Sign-in nonces seen per device in the last 24 hours (protocol §4.5): a replayed sign-in
/// request is refused with code 14. Bounded per device and in devices.
#[derive(Default)]
pub(crate) struct NonceCache(Mutex<HashMap<PhysicalId, Seen>>);

/// Nonces of one device with when they were seen, oldest first.
type Seen = VecDeque<([u8; 8], NaiveDateTime)>;

const NONCES_PER_DEVICE: usize = 256;
const NONCE_DEVICES: usize = 100_000;

impl NonceCache {
    /// Records the nonce; false if it was seen within 24 hours.
    pub(crate) fn fresh(&self, device: PhysicalId, nonce: [u8; 8], now: NaiveDateTime) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        if m.len() >= NONCE_DEVICES && !m.contains_key(&device) {
            m.clear(); // crude but bounded; a replay then only disturbs, it never decrypts
        }
        let q = m.entry(device).or_default();
        let horizon = now - TimeDelta::hours(24);
        q.retain(|(_, t)| *t > horizon);
        if q.iter().any(|(n, _)| *n == nonce) {
            return false;
        }
        if q.len() >= NONCES_PER_DEVICE {
            q.pop_front();
        }
        q.push_back((nonce, now));
        true
    }
}
