//! Errors inside a PostgreSQL transaction (which ones are worth a retry), the small
//! conversions the statements need, and reading a `tokio_postgres::Row` through
//! [`Cells`] for the shared row mapping.

use crate::rows::Cells;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tuisong_core::store::StoreError;

/// An error inside a transaction: from PostgreSQL (maybe worth retrying) or ours.
pub(crate) enum TxError {
    Pg(tokio_postgres::Error),
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
        let TxError::Pg(e) = self else {
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

    pub(super) fn into_store(self) -> StoreError {
        match self {
            TxError::Pg(e) => be(e),
            TxError::Store(e) => e,
        }
    }
}

pub(super) fn be(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Backend(e.to_string()),
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
