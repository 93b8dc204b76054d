//! Subcommands; each module owns its clap arguments and its `run`.

pub mod approval;
pub mod audit;
pub mod backup;
pub mod blacklist;
pub mod card;
pub mod card_admin;
pub mod cardholder;
pub mod client;
pub mod config;
pub mod dayend;
pub mod device;
pub mod exception;
pub mod fep;
pub mod keys;
pub mod loadgen;
pub mod login;
pub mod maintenance;
pub mod merchant;
pub mod operator;
pub mod pos;
pub mod report;
pub mod serve;
pub mod subsidy;
pub mod topup;
