//! A keyed rate limiter (GCRA, the `governor` crate): at most `per_minute` requests a
//! minute for each key (a client address, an app, a token…), up to `burst` at once.
//! Shared by every part of the server that must bound what one caller can make it do;
//! the HTTP side (the client address, the 429 answer) is `crate::edge::limit`.
//!
//! Memory is bounded: a key whose state is back to "fresh" carries no information, and
//! `retain_recent` (run periodically by the retention worker, and by `check` itself when
//! the map grows past [`MAX_KEYS`]) forgets every such key.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys above which a check first forgets the idle ones (at most once a second).
pub const MAX_KEYS: usize = 100_000;

/// How long a refused caller should wait before the next request can pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (the `Retry-After` header's unit).
    pub fn secs(&self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    /// None: no limit.
    inner: Option<DefaultKeyedRateLimiter<K>>,
    started: Instant,
    /// Milliseconds after `started` of the last trim that `check` ran.
    last_trim_ms: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `per_minute` requests a minute per key, `burst` of them at once (at least 1);
    /// `per_minute == 0` means no limit.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let inner = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            inner,
            started: Instant::now(),
            last_trim_ms: AtomicU64::new(0),
        }
    }

    /// A limiter that lets everything through.
    pub fn unlimited() -> Self {
        Self::new(0, 0)
    }

    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }

    /// Takes one request of `key`'s allowance, or says how long until one is left.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        let Some(l) = &self.inner else {
            return Ok(());
        };
        if l.len() >= MAX_KEYS {
            self.trim_now_and_then(l);
        }
        l.check_key(key).map_err(|not_until| {
            RetryAfter(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Forgets every key whose allowance is full again (they are indistinguishable from
    /// a new key) and gives the memory back.
    pub fn retain_recent(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn trim_now_and_then(&self, l: &DefaultKeyedRateLimiter<K>) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_trim_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_trim_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_and_other_keys_are_apart() {
        let l = KeyedLimiter::new(60, 3);
        for _ in 0..3 {
            assert_eq!(l.check(&"a"), Ok(()));
        }
        let wait = l.check(&"a").expect_err("the fourth is refused");
        // One request a second comes back.
        assert!(wait.0 <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(wait.secs(), 1);
        assert_eq!(l.check(&"b"), Ok(()));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let l = KeyedLimiter::unlimited();
        assert!(!l.is_limited());
        for _ in 0..10_000 {
            assert_eq!(l.check(&1u32), Ok(()));
        }
        assert!(l.is_empty());
    }

    #[test]
    fn retain_recent_forgets_keys_whose_allowance_is_full_again() {
        // 60 000 a minute: a key is fresh again 1 ms after its request.
        let l = KeyedLimiter::new(60_000, 1);
        for k in 0..100u32 {
            assert_eq!(l.check(&k), Ok(()));
        }
        assert_eq!(l.len(), 100);
        std::thread::sleep(Duration::from_millis(20));
        l.retain_recent();
        assert_eq!(l.len(), 0);
    }
}
