//! The `Store`: everything tuisong keeps, behind one trait so the embedded SQLite store
//! and the PostgreSQL store are interchangeable. The trait speaks domain types only.
//!
//! Contract for implementations (checked by the contract suite in `tuisong-store`):
//! - Every method that changes state returns only after the change is durable.
//! - `send` is one atomic step: idempotency check, recipient check, consent consumption
//!   (a conditional update — never read-then-write) and the message insert commit
//!   together or not at all.
//! - `take_quota` and `add_template`'s cap are conditional writes as well, so they hold
//!   under concurrency from many nodes.
//!
//! `records` holds the values the store takes and gives back; `contract` the traits, one
//! per aggregate, that both backends implement.

mod commit_stats;
mod contract;
mod records;

pub use commit_stats::{CommitSnapshot, CommitStats};
pub use contract::*;
pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend error: {0}")]
    Backend(String),
    /// The store cannot be reached right now (its connection died, it is restarting, or
    /// reconnects are backing off); the request changed nothing or its outcome is
    /// unknown, and the caller may retry. The text is for the log, never for a caller.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store is shut down")]
    Closed,
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}
