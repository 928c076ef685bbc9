//! Errors inside a PostgreSQL transaction (which ones are worth a retry, which ones mean
//! the connection is gone), the small conversions the statements need, and reading a
//! `tokio_postgres::Row` through [`Cells`] for the shared row mapping.

use crate::rows::Cells;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tuisong_core::store::StoreError;

/// An error inside a transaction: from PostgreSQL (maybe worth retrying), from its
/// `COMMIT` (kept apart: a lost connection there leaves the outcome unknown), or ours.
pub(crate) enum TxError {
    Pg(tokio_postgres::Error),
    Commit(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl TxError {
    /// A failure that says nothing about the request, only about its timing: the whole
    /// transaction was rolled back and may simply run again.
    pub(super) fn retryable(&self) -> bool {
        let (TxError::Pg(e) | TxError::Commit(e)) = self else {
            return false;
        };
        match e.code() {
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => true,
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => true,
            // Sends with one idempotency key are serialized by an advisory lock; should
            // two ever meet at the unique index anyway, the retry sees the first and
            // answers Replayed or IdempotencyConflict.
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                e.as_db_error().and_then(|d| d.constraint()) == Some("messages_idempotency")
            }
            _ => false,
        }
    }

    /// The connection died (or the server is going away) under this transaction.
    pub(super) fn lost_connection(&self) -> bool {
        match self {
            TxError::Pg(e) | TxError::Commit(e) => is_connection_error(e),
            TxError::Store(e) => matches!(e, StoreError::Unavailable(_)),
        }
    }

    /// Whether the transaction is known not to have committed: true for every failure
    /// before `COMMIT` was sent (PostgreSQL rolls back an open transaction whose session
    /// ends), false for a connection lost while `COMMIT` was on its way or its answer
    /// was — the server may have committed, and nobody can tell.
    pub(super) fn before_commit(&self) -> bool {
        !matches!(self, TxError::Commit(e) if is_connection_error(e))
    }

    pub(super) fn into_store(self) -> StoreError {
        match self {
            TxError::Commit(e) if is_connection_error(&e) => StoreError::Unavailable(format!(
                "the connection was lost during COMMIT, so its outcome is unknown: {}",
                describe(&e)
            )),
            TxError::Pg(e) | TxError::Commit(e) => be(e),
            TxError::Store(e) => e,
        }
    }
}

/// Whether `e` is about the connection rather than the statement: it is closed, its
/// socket failed, or the server refused or ended the session — SQLSTATE class 08
/// (connection exception), 57P01 `admin_shutdown` (`pg_terminate_backend`, a fast
/// shutdown), 57P02 `crash_shutdown`, 57P03 `cannot_connect_now` (starting up).
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03");
    }
    // Kind::Io and Kind::Connect carry the socket's error as their source.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The error's text with its SQLSTATE, for the log. tokio-postgres never puts the
/// connection's password in an error.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// A PostgreSQL error as the store reports it: `Unavailable` when the connection is
/// the problem, `Backend` otherwise.
pub(super) fn be(e: tokio_postgres::Error) -> StoreError {
    if is_connection_error(&e) {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Backend(describe(&e))
    }
}

pub(super) fn corrupt(what: &str) -> TxError {
    TxError::Store(StoreError::Corrupt(what.to_owned()))
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<String, TxError> {
    serde_json::to_string(v).map_err(|e| TxError::Store(StoreError::Backend(e.to_string())))
}

/// A row count for LIMIT: PostgreSQL refuses a negative one where SQLite reads "no limit".
pub(super) fn lim(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Cells for Row {
    type Error = TxError;
    fn text(&self, i: usize) -> Result<String, TxError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, TxError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, TxError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, TxError> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool, TxError> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64, TxError> {
        Ok(self.try_get(i)?)
    }
    fn corrupt(what: &str) -> TxError {
        corrupt(what)
    }
}

/// Maps every row with `f`.
pub(super) fn collect<T>(
    rows: Vec<Row>,
    f: impl Fn(&Row) -> Result<T, TxError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|r| f(r).map_err(TxError::into_store))
        .collect()
}

/// Maps the row, if there is one, with `f`.
pub(super) fn one<T>(
    row: Option<Row>,
    f: impl Fn(&Row) -> Result<T, TxError>,
) -> Result<Option<T>, StoreError> {
    row.map(|r| f(&r).map_err(TxError::into_store)).transpose()
}
