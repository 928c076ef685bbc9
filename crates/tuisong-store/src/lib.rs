//! Implementations of `tuisong_core::store::Store`. The embedded default is SQLite in WAL
//! mode with group commit ([`sqlite::SqliteStore`]); several nodes share PostgreSQL
//! ([`postgres::PgStore`]). Both pass the same contract suite (`tests/contract`).

pub mod postgres;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::{SqliteSettings, SqliteStore};
