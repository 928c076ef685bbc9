//! How a store's writes commit: how many jobs each commit carried and how long the
//! `COMMIT` took (the fsync on SQLite, the round trip and WAL flush on PostgreSQL). The
//! store records; the server's `/metrics` reads a snapshot at each scrape. Atomics only,
//! so recording costs a few adds on the writer's path and nothing allocates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-time buckets, in seconds (0.25 ms … 1 s, doubling).
pub const COMMIT_SECONDS_BUCKETS: [f64; 13] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
];
/// Upper bounds of the jobs-per-commit buckets (1 … 1024, doubling).
pub const BATCH_SIZE_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// One histogram of fixed buckets (the last slot counts what is above every bound).
struct Buckets<const N: usize> {
    counts: [AtomicU64; N],
    over: AtomicU64,
}

impl<const N: usize> Buckets<N> {
    const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; N],
            over: AtomicU64::new(0),
        }
    }

    fn record(&self, bounds: &[f64; N], v: f64) {
        match bounds.iter().position(|b| v <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// (upper bound, count in that bucket alone), the last bound `+Inf`.
    fn snapshot(&self, bounds: &[f64; N]) -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect();
        out.push((f64::INFINITY, self.over.load(Ordering::Relaxed)));
        out
    }
}

/// A store's commits since it opened.
pub struct CommitStats {
    commits: AtomicU64,
    jobs: AtomicU64,
    commit_nanos: AtomicU64,
    seconds: Buckets<13>,
    sizes: Buckets<11>,
}

impl Default for CommitStats {
    fn default() -> Self {
        Self::new()
    }
}

/// A copy of [`CommitStats`] at one moment, for an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitSnapshot {
    pub commits: u64,
    pub jobs: u64,
    pub commit_seconds_sum: f64,
    /// (upper bound in seconds, commits in that bucket alone); the last bound is `+Inf`.
    pub commit_seconds: Vec<(f64, u64)>,
    /// (upper bound in jobs, commits in that bucket alone); the last bound is `+Inf`.
    pub batch_sizes: Vec<(f64, u64)>,
}

impl CommitStats {
    pub const fn new() -> Self {
        Self {
            commits: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
            commit_nanos: AtomicU64::new(0),
            seconds: Buckets::new(),
            sizes: Buckets::new(),
        }
    }

    /// One commit of `jobs` jobs whose `COMMIT` took `took`.
    pub fn record(&self, jobs: usize, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs as u64, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.seconds
            .record(&COMMIT_SECONDS_BUCKETS, took.as_secs_f64());
        self.sizes.record(&BATCH_SIZE_BUCKETS, jobs as f64);
    }

    pub fn snapshot(&self) -> CommitSnapshot {
        CommitSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
            commit_seconds_sum: self.commit_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            commit_seconds: self.seconds.snapshot(&COMMIT_SECONDS_BUCKETS),
            batch_sizes: self.sizes.snapshot(&BATCH_SIZE_BUCKETS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_land_in_their_buckets_and_sum_up() {
        let s = CommitStats::new();
        s.record(1, Duration::from_micros(200));
        s.record(3, Duration::from_millis(3));
        s.record(5000, Duration::from_secs(2));
        let snap = s.snapshot();
        assert_eq!((snap.commits, snap.jobs), (3, 5004));
        assert!((snap.commit_seconds_sum - 2.0032).abs() < 1e-9);
        assert_eq!(snap.commit_seconds[0], (0.000_25, 1));
        assert_eq!(snap.commit_seconds[4], (0.004, 1), "3 ms is at most 4 ms");
        assert_eq!(snap.commit_seconds.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(snap.batch_sizes[0], (1.0, 1));
        assert_eq!(snap.batch_sizes[2], (4.0, 1), "3 jobs are at most 4");
        assert_eq!(snap.batch_sizes.last(), Some(&(f64::INFINITY, 1)));
        let total: u64 = snap.batch_sizes.iter().map(|b| b.1).sum();
        assert_eq!(total, snap.commits);
    }
}
