//! Retention: how long what has outlived its use is kept, and the sweep that removes it
//! in bounded batches. The store decides which rows qualify (never a message that may
//! still be delivered, never the consent ledger); this file turns the settings into the
//! cutoff of each kind.

use super::Platform;
use crate::clock::Millis;
use crate::error::Result;
use crate::store::Sweep;

const DAY: Millis = 86_400_000;

/// The longest quota window a policy may set (31 days, `policy::Cap`); a counter whose
/// window began a day before that can only be reset by its next use, so it may go.
const COUNTER_HORIZON: Millis = 32 * DAY;

/// How long each kind of record is kept. 0 days keeps it forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Finished messages (delivered, recalled, cancelled, expired) with their timeline,
    /// deliveries and inbox entries, counted from their last change.
    pub messages_days: u32,
    /// Message-push outbox rows that were delivered or given up, and the attempt log.
    pub push_days: u32,
    /// The hourly analytics counters.
    pub stats_days: u32,
    /// Most rows one sweep statement deletes (one write of the store; other writes run
    /// between two batches).
    pub batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            messages_days: 90,
            push_days: 7,
            stats_days: 400,
            batch: 1000,
        }
    }
}

impl Retention {
    /// The cutoff of `what` at `now`, and the batch it is swept in; None when that kind
    /// is kept forever.
    pub fn plan(&self, what: Sweep, now: Millis) -> Option<(Millis, usize)> {
        let batch = self.batch.max(1);
        let days = |d: u32| (d > 0).then(|| now - i64::from(d) * DAY);
        let cutoff = match what {
            // A code is refused from its expiry on; nothing needs it after that.
            Sweep::LoginCodes => Some(now),
            Sweep::Messages => days(self.messages_days),
            Sweep::PushOutbox | Sweep::PushAttempts => days(self.push_days),
            Sweep::Stats => days(self.stats_days),
            Sweep::Counters => Some(now - COUNTER_HORIZON),
        }?;
        // A message brings its events, deliveries and inbox entries along: a few rows each.
        let batch = if what == Sweep::Messages {
            (batch / 4).max(1)
        } else {
            batch
        };
        Some((cutoff, batch))
    }
}

impl Platform {
    /// One bounded batch of the sweep of `what`: returns (deleted, batch size); fewer
    /// deleted than the batch size means nothing of that kind is left to delete now.
    pub async fn sweep_batch(&self, what: Sweep, r: &Retention) -> Result<(u64, usize)> {
        let Some((cutoff, batch)) = r.plan(what, self.now()) else {
            return Ok((0, 1));
        };
        Ok((self.store.sweep(what, cutoff, batch).await?, batch))
    }

    /// After a sweep: lets the store give the space back (the SQLite WAL is truncated).
    pub async fn compact_store(&self) -> Result<()> {
        Ok(self.store.compact().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_follow_the_settings_and_zero_keeps_forever() {
        let r = Retention::default();
        let now = 1_000 * DAY;
        assert_eq!(r.plan(Sweep::LoginCodes, now), Some((now, 1000)));
        assert_eq!(r.plan(Sweep::Messages, now), Some((now - 90 * DAY, 250)));
        assert_eq!(
            r.plan(Sweep::PushAttempts, now),
            Some((now - 7 * DAY, 1000))
        );
        assert_eq!(r.plan(Sweep::Stats, now), Some((now - 400 * DAY, 1000)));
        assert_eq!(r.plan(Sweep::Counters, now), Some((now - 32 * DAY, 1000)));
        let keep = Retention {
            messages_days: 0,
            stats_days: 0,
            ..Retention::default()
        };
        assert_eq!(keep.plan(Sweep::Messages, now), None);
        assert_eq!(keep.plan(Sweep::Stats, now), None);
    }
}
