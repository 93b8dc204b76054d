//! The host's rules, written once over `Tx` (a transaction on either backend). Every
//! function reads real state and either refuses with a return code before writing anything,
//! or writes everything it needs in the caller's transaction.

pub mod admin;
pub mod approvals;
pub mod blacklist;
pub mod cardholders;
pub mod checks;
pub mod counter;
pub mod dayend;
pub mod exceptions;
pub mod info;
pub mod journal;
pub mod loads;
pub mod merchants;
pub mod operators;
pub mod records;
pub mod report;
pub mod shifts;
pub mod signin;
pub mod subsidies;
pub mod topup;
