//! What the scenarios share, one concern per file: `server` (the server as a child
//! process), `app` (the app and its users through the public API), `ws` (device
//! WebSockets), `stats` (clock, percentiles, the recorder), `progress` (the progress
//! line), `machine` (this machine and /proc). Here: pacing, waiting, writing files.

mod app;
mod machine;
mod progress;
mod server;
mod stats;
mod ws;

pub use app::{App, stamp_page};
pub use machine::{Machine, cpu_secs, nofile_limit, raise_nofile, rss_kib};
pub use progress::{Progress, timed_phase};
pub use server::ServerProc;
pub use stats::{Latency, Recorder, now_us};
pub use ws::{PER_SOURCE_ADDRESS, connect_all, source_ip, spawn_device};

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Creates a file (and its folder) with `text`.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Waits until `f` is true or `within` passes; returns whether it became true.
pub async fn wait_until(within: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Runs `n` jobs at `rate`/s spread over `workers` tasks: job i is due at start + i/rate
/// (a late worker catches up at once, so the offered rate holds). `job(worker, i)`.
pub async fn paced<F, Fut>(rate: f64, n: u64, workers: usize, job: F) -> anyhow::Result<()>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let job = Arc::new(job);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64;
            while i < n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                job(w, i).await?;
                i += workers as u64;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
