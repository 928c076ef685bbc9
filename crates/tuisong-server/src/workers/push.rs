//! The message-push worker: drains the durable outbox to the apps' servers.
//!
//! Delivery is at-least-once and in order per user: the store hands out only the oldest
//! pending event of each (app, openid), leased so a crashed worker's claim comes back.
//! A `success` or empty 2xx reply is success; anything else is retried on a schedule
//! that starts quick and grows (5 s, 15 s, 1 min, 5 min, 15 min, 30 min, 1 h, then every
//! 2 h, ±20 % jitter) until the retry horizon (24 h by default) has passed. How one event
//! becomes a signed request is `crate::push`.

use crate::push::{PushSettings, build_request, post, wire_event};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tuisong_core::ids::AppId;
use tuisong_core::push::{OutboxItem, PushAttempt, PushConfig, retry_delay};
use tuisong_core::service::Platform;

/// The push config and the app of one app, read once per pass for all its events.
type Target = Arc<(Option<PushConfig>, Option<tuisong_core::store::App>)>;

/// Delivers one claimed event and records the attempt.
async fn deliver(
    platform: &Platform,
    http: &reqwest::Client,
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
    platform.finish_push(&appid, &attempt, next).await?;
    Ok(())
}

/// One pass: claim what is due and deliver it, several users at once.
pub async fn push_once(
    platform: &Arc<Platform>,
    http: &reqwest::Client,
    settings: &PushSettings,
) -> anyhow::Result<usize> {
    let items = platform
        .claim_push(settings.lease.as_millis() as i64, settings.concurrency)
        .await?;
    let n = items.len();
    let mut targets: std::collections::HashMap<String, Target> = std::collections::HashMap::new();
    for item in &items {
        if !targets.contains_key(&item.appid) {
            let appid = AppId::from_trusted(item.appid.clone());
            let target = platform.push_target(&appid).await?;
            targets.insert(item.appid.clone(), Arc::new(target));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for item in items {
        let (platform, http, settings) = (platform.clone(), http.clone(), settings.clone());
        let target = targets[&item.appid].clone();
        tasks.spawn(async move { deliver(&platform, &http, &settings, item, target).await });
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "recording a push attempt failed"),
            Err(e) => tracing::error!(error = %e, "a push task failed"),
        }
    }
    Ok(n)
}

/// The push worker: delivers due events every tick until shutdown. A failed step is
/// logged and retried at the next tick; the worker itself ends only at shutdown.
pub async fn run(
    platform: Arc<Platform>,
    http: reqwest::Client,
    settings: PushSettings,
    tick: Duration,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (platform, http, settings) = (&platform, &http, &settings);
    super::every_tick(tick, shutdown, move || async move {
        // Drain what is due before waiting for the next tick.
        loop {
            match push_once(platform, http, settings).await {
                Ok(n) if n >= settings.concurrency => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "push step failed; retrying next tick");
                    break;
                }
            }
        }
    })
    .await
}
