//! The host's rules, written once over `Tx` (a transaction on either backend). Every
//! function reads real state and either refuses with a return code before writing anything,
//! or writes everything it needs in the caller's transaction.

pub mod admin;
pub mod approvals;
pub mod authcards;
pub mod blacklist;
pub mod cardholders;
pub mod checks;
pub mod closure_batches;
pub mod closures;
pub mod counter;
pub mod dayend;
pub mod exceptions;
pub mod info;
pub mod journal;
pub mod late_credits;
pub mod lifecycle_audit;
pub mod loads;
pub mod merchants;
pub mod operators;
pub mod pin;
pub mod reconcile;
pub mod records;
pub mod repair;
pub mod replacements;
pub mod report;
pub mod shifts;
pub mod signin;
pub mod subsidies;
pub mod subsidy_follow;
pub mod topup;
