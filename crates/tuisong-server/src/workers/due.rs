//! The time-driven work of the inbox: scheduled sends and quiet-hour holds that are due
//! are released, messages past their TTL expire (refunding one-time grants). Once per
//! tick; every step is a conditional update in the store, so several nodes may run it.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tuisong_core::service::Platform;

/// Runs `Platform::run_due` every tick until shutdown. A failed step is logged and
/// retried at the next tick; the worker itself ends only at shutdown.
pub async fn run(
    platform: Arc<Platform>,
    tick: Duration,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let platform = &platform;
    super::every_tick(tick, shutdown, move || async move {
        if let Err(e) = platform.run_due().await {
            tracing::error!(error = %e, "scheduler step failed; retrying next tick");
        }
    })
    .await
}
