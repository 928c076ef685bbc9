//! The numbers: one clock for send and receive stamps, latency percentiles, and the
//! recorder device tasks write what they received into.

use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static T0: OnceLock<Instant> = OnceLock::new();

/// Microseconds since this process's first call: the stamp senders put in a message and
/// receivers subtract from, so both sides read one clock.
pub fn now_us() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The p-quantile of sorted microseconds, in milliseconds (nearest rank).
pub fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64) * p).ceil() as usize;
    sorted_us[i.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

/// p50/p99/p999 in ms, and the count.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(mut us: Vec<u64>) -> Latency {
        us.sort_unstable();
        Latency {
            n: us.len(),
            p50: pct_ms(&us, 0.5),
            p99: pct_ms(&us, 0.99),
            p999: pct_ms(&us, 0.999),
            max: us.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        }
    }
}
/// (key, received-at µs) pairs recorded by many device tasks: the key is the send's
/// stamp for cards, the msgid for tombstones.
#[derive(Default)]
pub struct Recorder {
    pairs: Mutex<Vec<(u64, u64)>>,
    count: std::sync::atomic::AtomicU64,
    /// Size of the last frame recorded (bytes), so the MQTT baseline sends the same.
    pub frame_bytes: std::sync::atomic::AtomicUsize,
}

impl Recorder {
    pub fn record(&self, key: u64, at: u64) {
        if let Ok(mut p) = self.pairs.lock() {
            p.push((key, at));
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Everything recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<(u64, u64)> {
        self.count.store(0, Ordering::Relaxed);
        self.pairs
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}
