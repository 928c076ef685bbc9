//! The message-push worker: drains the durable outbox to the apps' servers.
//!
//! Delivery is at-least-once and in order per user: the store hands out only the oldest
//! pending event of each (app, openid), leased so a crashed worker's claim comes back.
//! A `success` or empty 2xx reply is success; anything else is retried on a schedule
//! that starts quick and grows (5 s, 15 s, 1 min, 5 min, 15 min, 30 min, 1 h, then every
//! 2 h, ±20 % jitter) until the retry horizon (24 h by default) has passed. How one event
//! becomes a signed request is `crate::push`.
//!
//! Apps do not wait for each other. Deliveries run as a long-lived set of tasks, at most
//! `concurrency` in all and `per_app_concurrency` per app; whenever one ends (and at
//! every tick) the worker claims more for the free slots, and the store shares a claim
//! between the apps in turns, counting what each already has in flight. A receiver that
//! hangs so holds only its own app's slots, each for at most the attempt timeout.

use crate::push::{PushClient, PushSettings, build_request, post, wire_event};
use parking_lot::Mutex;
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tuisong_core::ids::AppId;
use tuisong_core::push::{ClaimLimits, OutboxItem, PushAttempt, PushConfig, retry_delay};
use tuisong_core::service::Platform;

/// The push config and the app of one app, read once per pass for all its events.
type Target = Arc<(Option<PushConfig>, Option<tuisong_core::store::App>)>;

/// Delivers one claimed event and records the attempt.
async fn deliver(
    platform: &Platform,
    http: &PushClient,
    settings: &PushSettings,
    item: OutboxItem,
    target: Target,
) -> anyhow::Result<()> {
    let appid = AppId::from_trusted(item.appid.clone());
    let started = Instant::now();
    let now = platform.now();
    let attempt_no = item.attempts + 1;
    let (cfg, app) = &*target;
    let result = match (&cfg, &app) {
        (Some(cfg), Some(app)) => {
            let ev = wire_event(&app.original_id, &item);
            match build_request(cfg, appid.as_str(), &ev, platform.clock().now_secs()) {
                Ok(req) => post(http, &cfg.url, req).await,
                Err(e) => Err((None, e.to_string())),
            }
        }
        _ => Err((None, "push config removed".to_owned())),
    };
    let age = now - item.created_at;
    let (ok, http_status, error, next, outcome) = match result {
        Ok(status) => (true, Some(status), None, None, "delivered".to_owned()),
        Err((status, error)) => {
            let delay = retry_delay(attempt_no, rand::rng().random::<f64>());
            let horizon = settings.retry_horizon.as_millis() as i64;
            if cfg.is_none() || age + delay > horizon {
                (false, status, Some(error), None, "gave up".to_owned())
            } else {
                let at = now + delay;
                (
                    false,
                    status,
                    Some(error),
                    Some(at),
                    format!("retry at {at}"),
                )
            }
        }
    };
    let attempt = PushAttempt {
        at: now,
        outbox_id: item.id,
        event: item.event.name().to_owned(),
        openid: item.openid.clone(),
        attempt: attempt_no,
        ok,
        http_status,
        error,
        duration_ms: started.elapsed().as_millis() as u64,
        outcome,
    };
    crate::metrics::process().push_attempt(ok, next.is_some());
    platform.finish_push(&appid, &attempt, next).await?;
    Ok(())
}

/// What this node has in flight: per app, and by outbox id.
#[derive(Default)]
struct Counts {
    per_app: HashMap<String, usize>,
    ids: HashSet<i64>,
}

/// One delivery's place in [`Counts`], given back when its task ends however it ends
/// (done, failed, panicked or aborted).
struct Slot {
    counts: Arc<Mutex<Counts>>,
    appid: String,
    id: i64,
}

impl Slot {
    fn take(counts: &Arc<Mutex<Counts>>, item: &OutboxItem) -> Slot {
        let mut c = counts.lock();
        *c.per_app.entry(item.appid.clone()).or_default() += 1;
        c.ids.insert(item.id);
        Slot {
            counts: counts.clone(),
            appid: item.appid.clone(),
            id: item.id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        c.ids.remove(&self.id);
        if let Some(n) = c.per_app.get_mut(&self.appid) {
            *n -= 1;
            if *n == 0 {
                c.per_app.remove(&self.appid);
            }
        }
    }
}

/// The deliveries in flight on this node.
struct Deliveries {
    platform: Arc<Platform>,
    http: PushClient,
    settings: Arc<PushSettings>,
    tasks: JoinSet<anyhow::Result<()>>,
    counts: Arc<Mutex<Counts>>,
}

impl Deliveries {
    /// Claims what is due for the free slots and starts delivering it; the number
    /// started.
    async fn fill(&mut self) -> anyhow::Result<usize> {
        let free = self.settings.concurrency.saturating_sub(self.tasks.len());
        if free == 0 {
            return Ok(0);
        }
        let in_flight: BTreeMap<String, usize> = self
            .counts
            .lock()
            .per_app
            .iter()
            .map(|(a, n)| (a.clone(), *n))
            .collect();
        let limits = ClaimLimits {
            total: free,
            per_app: self.settings.per_app_concurrency.max(1),
            in_flight,
        };
        let lease_ms = self.settings.lease.as_millis() as i64;
        let items = self.platform.claim_push(lease_ms, &limits).await?;
        let mut targets: HashMap<String, Target> = HashMap::new();
        let mut started = 0;
        for item in items {
            // Claimed again after its lease while its attempt still runs here: that
            // attempt records the outcome.
            if self.counts.lock().ids.contains(&item.id) {
                continue;
            }
            let target = match targets.get(&item.appid) {
                Some(t) => t.clone(),
                None => {
                    let appid = AppId::from_trusted(item.appid.clone());
                    let t = Arc::new(self.platform.push_target(&appid).await?);
                    targets.insert(item.appid.clone(), t.clone());
                    t
                }
            };
            let slot = Slot::take(&self.counts, &item);
            let (platform, http, settings) = (
                self.platform.clone(),
                self.http.clone(),
                self.settings.clone(),
            );
            self.tasks.spawn(async move {
                let _slot = slot;
                deliver(&platform, &http, &settings, item, target).await
            });
            started += 1;
        }
        Ok(started)
    }
}

fn report(done: Result<anyhow::Result<()>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "recording a push attempt failed"),
        Err(e) if e.is_cancelled() => {}
        Err(e) => tracing::error!(error = %e, "a push task failed"),
    }
}

/// The push worker: keeps the free slots filled with due events — at every tick and
/// whenever a delivery ends — until shutdown. A failed claim is logged and tried again
/// at the next tick. At shutdown the attempts in flight may finish (each is bounded by
/// the attempt timeout); any still running after that are dropped and their leases
/// bring them back.
pub async fn run(
    platform: Arc<Platform>,
    http: PushClient,
    settings: PushSettings,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let grace = settings.timeout + Duration::from_secs(1);
    let mut d = Deliveries {
        platform,
        http,
        settings: Arc::new(settings),
        tasks: JoinSet::new(),
        counts: Arc::default(),
    };
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = timer.tick() => {}
            Some(done) = d.tasks.join_next(), if !d.tasks.is_empty() => {
                report(done);
                while let Some(done) = d.tasks.try_join_next() {
                    report(done);
                }
            }
        }
        if let Err(e) = d.fill().await {
            tracing::error!(error = %e, "push claim failed; retrying next tick");
        }
    }
    let _ = tokio::time::timeout(grace, async {
        while let Some(done) = d.tasks.join_next().await {
            report(done);
        }
    })
    .await;
    d.tasks.abort_all();
    Ok(())
}
