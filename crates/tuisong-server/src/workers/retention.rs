//! Retention, off the request path: every `interval` the expired login codes go, then
//! everything past its retention (`tuisong_core::service::Retention`: finished messages
//! with their timeline and inbox entries, push logs, analytics, stale quota counters),
//! each kind in bounded batches — one store write each, so the writes of requests run
//! between two batches. After a pass that deleted anything the store compacts (on SQLite
//! the WAL is checkpointed and truncated). The pass also forgets the rate limiters' idle
//! client addresses, which bounds their memory.
//!
//! Several nodes may run it at once: each batch deletes only rows that qualify, and on
//! PostgreSQL skips rows another node holds.

use crate::state::ClientLimits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tuisong_core::service::{Platform, Retention};
use tuisong_core::store::Sweep;

/// Runs [`sweep`] every `interval` until shutdown, the first one an interval after the
/// start (a node that starts does its requests first). A failed batch is logged and the
/// pass goes on to the next kind; the worker itself ends only at shutdown.
pub async fn run(
    platform: Arc<Platform>,
    retention: Retention,
    limits: Arc<ClientLimits>,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (platform, retention, limits) = (&platform, &retention, &limits);
    let mut stop = shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(interval) => {}
        _ = stop.wait_for(|s| *s) => return Ok(()),
    }
    super::every_tick(interval, shutdown, move || {
        let stop = stop.clone();
        async move {
            limits.retain_recent();
            sweep(platform, retention, &stop).await;
        }
    })
    .await
}

/// One pass over every kind; returns the rows (messages) deleted. Stops between two
/// batches when the server stops.
pub async fn sweep(platform: &Platform, r: &Retention, shutdown: &watch::Receiver<bool>) -> u64 {
    let mut total = 0;
    for what in Sweep::ALL {
        let mut deleted = 0;
        loop {
            if super::stopping(shutdown) {
                return total + deleted;
            }
            match platform.sweep_batch(what, r).await {
                Ok((n, batch)) => {
                    deleted += n;
                    if n < batch as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = what.as_str(), error = %e, "retention sweep failed; retrying next pass");
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            if what == Sweep::LoginCodes {
                tracing::debug!(kind = what.as_str(), deleted, "retention sweep");
            } else {
                tracing::info!(kind = what.as_str(), deleted, "retention sweep");
            }
        }
        total += deleted;
    }
    if total > 0
        && let Err(e) = platform.compact_store().await
    {
        tracing::warn!(error = %e, "compacting the store after a sweep failed");
    }
    total
}
