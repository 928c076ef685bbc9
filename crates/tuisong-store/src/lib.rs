//! Implementations of `tuisong_core::store::Store`. The embedded default is SQLite in WAL
//! mode with group commit ([`sqlite::SqliteStore`]).

pub mod sqlite;

pub use sqlite::{SqliteSettings, SqliteStore};
