//! The background loops of a node, and the supervisor that keeps them running.
//!
//! - `due`: releases scheduled and held messages that are due, expires old ones;
//! - `push`: delivers the message-push outbox to the apps' servers;
//! - `retention`: sweeps expired login codes and what is past its retention, in bounded
//!   batches, then compacts the store.
//!
//! (The bus listener lives with its connection in `crate::bus`.)
//!
//! A worker that fails — returns an error, panics, or ends before shutdown — is logged
//! with its name, counted in `AppState::worker_restarts`, and started again after a
//! backoff that doubles from 100 ms up to 30 s and starts over once a run has lasted a
//! minute. Nothing a worker does is lost by a restart: its work is rows in the store.

pub mod due;
pub mod push;
pub mod retention;

use crate::push::PushSettings;
use crate::state::AppState;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long the supervisor waits before restarting a failed worker.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait; each failure doubles the previous one up to this.
    pub max: Duration,
    /// A run at least this long counts as healthy: the next wait is `first` again.
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// Starts every worker of this node under the supervisor. Each handle ends at shutdown.
pub fn spawn_all(state: &AppState, tick: Duration, push: PushSettings) -> Vec<JoinHandle<()>> {
    let due = {
        let (platform, shutdown) = (state.platform.clone(), state.shutdown.clone());
        move || due::run(platform.clone(), tick, shutdown.clone())
    };
    let pusher = {
        let (platform, http) = (state.platform.clone(), state.push_http.clone());
        let shutdown = state.shutdown.clone();
        move || {
            push::run(
                platform.clone(),
                http.clone(),
                push.clone(),
                tick,
                shutdown.clone(),
            )
        }
    };
    let restarts = &state.worker_restarts;
    vec![
        tokio::spawn(supervise(
            "due",
            restarts.due.clone(),
            state.shutdown.clone(),
            Backoff::default(),
            due,
        )),
        tokio::spawn(supervise(
            "push",
            restarts.push.clone(),
            state.shutdown.clone(),
            Backoff::default(),
            pusher,
        )),
    ]
}

/// Starts the retention worker (`retention::run`) under the supervisor; its handle ends
/// at shutdown.
pub fn spawn_retention(
    state: &AppState,
    retention: tuisong_core::service::Retention,
    interval: Duration,
) -> JoinHandle<()> {
    let (platform, limits) = (state.platform.clone(), state.client_limits.clone());
    let shutdown = state.shutdown.clone();
    let start = move || {
        retention::run(
            platform.clone(),
            retention.clone(),
            limits.clone(),
            interval,
            shutdown.clone(),
        )
    };
    tokio::spawn(supervise(
        "retention",
        state.worker_restarts.retention.clone(),
        state.shutdown.clone(),
        Backoff::default(),
        start,
    ))
}

/// Runs `step` once per `tick` until shutdown; a tick missed while a step ran is
/// delayed, not bunched. Shutdown is seen between steps, never inside one.
async fn every_tick<F, Fut>(
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut step: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => step().await,
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// True once the server is stopping (or whoever could stop it is gone).
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Runs the worker `start` makes, each run in its own task, until shutdown; restarts it
/// after every failure with `backoff`, counting the restarts in `restarts`.
pub async fn supervise<F, Fut>(
    name: &'static str,
    restarts: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
    backoff: Backoff,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut delay = backoff.first;
    loop {
        let began = Instant::now();
        let outcome = tokio::spawn(start()).await;
        let failure = match outcome {
            Ok(Ok(())) if stopping(&shutdown) => return,
            Ok(Ok(())) => "it stopped before shutdown".to_owned(),
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) if e.is_panic() => format!("it panicked: {}", panic_text(e.into_panic())),
            Err(e) => e.to_string(),
        };
        if stopping(&shutdown) {
            tracing::error!(worker = name, error = %failure, "worker failed while stopping");
            return;
        }
        let ran = began.elapsed();
        if ran >= backoff.healthy_after {
            delay = backoff.first;
        }
        let count = restarts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            worker = name,
            error = %failure,
            ran_ms = ran.as_millis() as u64,
            restarts = count,
            retry_in_ms = delay.as_millis() as u64,
            "worker failed; restarting it"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        delay = (delay * 2).min(backoff.max);
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_fails_twice_is_restarted_with_backoff_and_counted() {
        let (stop, shutdown) = watch::channel(false);
        let restarts = Arc::new(AtomicU64::new(0));
        let runs = Arc::new(AtomicU64::new(0));
        let (healthy_tx, mut healthy) = mpsc::unbounded_channel();
        let worker = {
            let (runs, shutdown) = (runs.clone(), shutdown.clone());
            move || {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                let (mut shutdown, healthy) = (shutdown.clone(), healthy_tx.clone());
                async move {
                    match n {
                        1 => anyhow::bail!("the first run fails"),
                        2 => panic!("the second run panics"),
                        _ => {
                            let _ = healthy.send(Instant::now());
                            let _ = shutdown.wait_for(|s| *s).await;
                            Ok(())
                        }
                    }
                }
            }
        };
        let began = Instant::now();
        let supervisor = tokio::spawn(supervise(
            "flaky",
            restarts.clone(),
            shutdown,
            Backoff::default(),
            worker,
        ));

        let third_run = healthy.recv().await.expect("the third run starts");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(restarts.load(Ordering::SeqCst), 2);
        // 100 ms after the first failure, 200 ms after the second.
        assert!(third_run - began >= Duration::from_millis(300));
        assert!(third_run - began < Duration::from_millis(400));

        stop.send(true).expect("the supervisor listens");
        supervisor.await.expect("the supervisor ends at shutdown");
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no restart after shutdown");
        assert_eq!(restarts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_supervisor_waiting_to_restart_ends_at_shutdown() {
        let (stop, shutdown) = watch::channel(false);
        let restarts = Arc::new(AtomicU64::new(0));
        let backoff = Backoff {
            first: Duration::from_secs(3600),
            ..Backoff::default()
        };
        let supervisor = tokio::spawn(supervise(
            "broken",
            restarts.clone(),
            shutdown,
            backoff,
            || async { anyhow::bail!("always fails") },
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(restarts.load(Ordering::SeqCst), 1);
        stop.send(true).expect("the supervisor listens");
        supervisor.await.expect("the supervisor ends at shutdown");
    }
}
