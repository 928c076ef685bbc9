//! The progress line: one stderr line updated in place while a phase runs.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One stderr line updated in place while a phase runs (on a terminal; elsewhere only
/// its last state is printed, so CI logs stay short).
pub struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// `status()` returns (fraction done 0..=1, text after the bar).
    pub fn start(
        label: impl Into<String>,
        status: impl Fn() -> (f64, String) + Send + Sync + 'static,
    ) -> Progress {
        let label = label.into();
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let draw = |final_: bool| {
                let (f, text) = status();
                let f = if f.is_finite() {
                    f.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let filled = (f * 24.0).round() as usize;
                let bar = format!("{}{}", "█".repeat(filled), "░".repeat(24 - filled));
                let line = format!("{label:<34} ▕{bar}▏ {:>3.0}%  {text}", f * 100.0);
                if tty {
                    eprint!("\r\x1b[K{line}{}", if final_ { "\n" } else { "" });
                } else if final_ {
                    eprintln!("{line}");
                }
            };
            while !s.load(Ordering::Relaxed) {
                draw(false);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            draw(true);
        });
        Progress { stop, task }
    }

    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// Sleeps `secs` with a progress bar labelled `label`, showing `text()`.
pub async fn timed_phase(
    label: impl Into<String>,
    secs: f64,
    text: impl Fn() -> String + Send + Sync + 'static,
) {
    let t0 = Instant::now();
    let p = Progress::start(label, move || (t0.elapsed().as_secs_f64() / secs, text()));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    p.finish().await;
}
