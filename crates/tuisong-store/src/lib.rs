//! Implementations of `tuisong_core::store::Store`. The embedded default is SQLite in WAL
//! mode with group commit ([`sqlite::SqliteStore`]); several nodes share PostgreSQL
//! ([`postgres::PgStore`]). Both pass the same contract suite (`tests/contract`).
//!
//! What the two have in common is written once: `rows` maps result rows to records for
//! both drivers, and `flow` holds the multi-step writes (the send, cancel/recall, acks,
//! expiry …) over the statements each backend supplies.

mod flow;
pub mod postgres;
mod rows;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::{SqliteSettings, SqliteStore};
