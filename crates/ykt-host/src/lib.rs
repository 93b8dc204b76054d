//! The host of ykt: the one-card core platform's domain, ledger and storage.
//!
//! - [`Store`] is the handle everything goes through: it runs domain functions as jobs on
//!   writer threads, group-committed, on SQLite or PostgreSQL ([`Backend`]).
//! - [`domain`] holds the rules, written once over [`Tx`]: online debits and uploads
//!   ([`domain::records`]), sign-in, the blacklist, administration, the return-code checks.
//! - [`ledger`] is the double-entry ledger and its audit (R-H6).
//!
//! ```no_run
//! # use ykt_host::*;
//! let store = Store::open(StoreConfig::new(Backend::Sqlite("ykt.db".into())))?;
//! let report = store.execute(|tx| ledger::audit(tx.conn))?;
//! assert!(report.is_clean());
//! # Ok::<(), HostError>(())
//! ```

pub mod backend;
pub mod domain;
pub mod error;
pub mod ledger;
pub mod model;
pub mod params_codec;
pub mod repo;
pub mod sql;
pub mod store;

pub use domain::checks::Origin;
pub use domain::info::{CardView, Notices};
pub use domain::records::{DebitRequest, Outcome, TacVerifier};
pub use error::{HostError, Result};
pub use ledger::{AuditReport, Tx};
pub use model::*;
pub use store::{Backend, Store, StoreConfig};
