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
//! # fn request() -> DebitRequest { unimplemented!() }
//! # let now = chrono::NaiveDateTime::default();
//! let store = Store::open(StoreConfig::new(Backend::Sqlite("ykt.db".into())))?;
//! // The FEP: queue an online debit; the reply comes after COMMIT, on the writer thread.
//! let req = request();
//! store.submit(
//!     move |tx| domain::records::authorize(tx, &req, now),
//!     |result| match result {
//!         Ok(outcome) => { /* code 0, outcome.info(), outcome.collect */ }
//!         Err(e) => { /* e.return_code() goes on the wire */ }
//!     },
//! )?;
//! // The card office and `ykt audit`: blocking calls; reads on reader connections.
//! let report = store.read(|tx| ledger::audit(tx.conn))?;
//! assert!(report.is_clean());
//! # Ok::<(), HostError>(())
//! ```
//!
//! Refusals are `HostError::Refused(code)` with the code of the spec's table; a job that
//! returns an error leaves nothing written. Database failures map to code 3, a full queue
//! and a broken invariant (`HostError::Invariant`, a bug) to code 1 (`HostError::return_code`).
//! An upload's debit refused for good is held in the exception queue (`domain::exceptions`).

pub mod access;
pub mod backend;
pub mod backup;
mod cache;
pub mod domain;
pub mod error;
pub mod exception_rows;
pub mod fuzzing;
pub mod import;
pub mod import_subsidies;
pub mod ledger;
pub mod model;
pub mod params_codec;
pub mod repo;
pub mod repo_authcards;
pub mod repo_holders;
pub mod repo_loads;
pub mod repo_people;
pub mod repo_subsidies;
pub mod secrets;
pub mod server;
pub mod sql;
pub mod store;

pub use domain::checks::Origin;
pub use domain::info::{CardView, Notices};
pub use domain::records::{DebitRequest, Outcome, TacVerifier, Uploaded};
pub use error::{HostError, Result};
pub use ledger::{AuditReport, Tx};
pub use model::*;
pub use store::{Backend, Store, StoreConfig};
