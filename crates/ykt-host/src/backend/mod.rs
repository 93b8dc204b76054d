//! The two storage backends: each provides a `Conn` and its own migrations.

pub mod postgres;
mod schema;
mod schema_authcards;
mod schema_dayend;
mod schema_lifecycle;
mod schema_loads;
mod schema_merchants;
mod schema_people;
mod schema_reconcile;
mod schema_subsidies;
pub mod sqlite;
