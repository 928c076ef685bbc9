//! Message push (消息推送) to the app's own server: saving a config (after WeChat's GET
//! handshake succeeds), and the worker that delivers the durable outbox — signed, and in
//! compatible or safe mode AES-encrypted, byte-compatible with WeChat (spec §7, §8).
//!
//! Delivery is at-least-once and in order per user: the store hands out only the oldest
//! pending event of each (app, openid), leased so a crashed worker's claim comes back.
//! A `success` or empty 2xx reply is success; anything else is retried on a schedule
//! that starts quick and grows (5 s, 15 s, 1 min, 5 min, 15 min, 30 min, 1 h, then every
//! 2 h, ±20 % jitter) until the retry horizon (24 h by default) has passed.

use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tuisong_core::Error;
use tuisong_core::ids::{AppId, Secret, random_string};
use tuisong_core::push::{
    OutboxItem, PushAttempt, PushConfig, PushEvent, PushFormat, PushMode, retry_delay,
};
use tuisong_core::service::Platform;
use tuisong_wire::crypto::{MsgCrypt, signature};
use tuisong_wire::event::{
    self, ChangeItem, Event, EventBody, ExtValue, Format, PopupItem, SentItem,
};

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Per attempt (WeChat drops the connection after 5 s).
    pub timeout: Duration,
    /// Retries stop this long after the event was queued.
    pub retry_horizon: Duration,
    /// How long a claimed event is reserved for one attempt.
    pub lease: Duration,
    /// Events in flight at once (one per user at most).
    pub concurrency: usize,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retry_horizon: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            concurrency: 32,
        }
    }
}

/// The HTTP client for developer servers: no redirects, bounded time.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent("tuisong-push")
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn digits(n: usize) -> String {
    random_string(b"0123456789", n)
}

/// WeChat's verification GET (spec §7.2): the server must answer the echostr.
pub async fn handshake(
    http: &reqwest::Client,
    url: &str,
    token: &Secret,
    now_secs: i64,
) -> Result<(), Error> {
    let timestamp = now_secs.to_string();
    let nonce = digits(10);
    let echostr = digits(19);
    let sig = signature(&[token.expose(), &timestamp, &nonce]);
    let resp = http
        .get(url)
        .query(&[
            ("signature", sig.as_str()),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
            ("echostr", &echostr),
        ])
        .send()
        .await
        .map_err(|e| {
            Error::Invalid(format!(
                "handshake failed: could not reach {url}: {}",
                short_error(&e)
            ))
        })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Error::Invalid(format!(
            "handshake failed: {url} answered HTTP {}",
            status.as_u16()
        )));
    }
    if body.trim() != echostr {
        return Err(Error::Invalid(format!(
            "handshake failed: {url} did not echo echostr (check the token and the signature check)"
        )));
    }
    Ok(())
}

fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.to_string()
    }
}

/// Validates, checks the receiver with the handshake, then stores the config.
pub async fn save_config(
    platform: &Platform,
    http: &reqwest::Client,
    appid: &AppId,
    mut cfg: PushConfig,
) -> Result<PushConfig, Error> {
    cfg.url = cfg.url.trim().to_owned();
    cfg.validate()?;
    if let Some(k) = &cfg.encoding_aes_key {
        MsgCrypt::new(k.expose(), appid.as_str()).map_err(|_| {
            Error::Invalid("encoding_aes_key does not decode to a 32-byte AES key".into())
        })?;
    }
    handshake(http, &cfg.url, &cfg.token, platform.clock().now_secs()).await?;
    cfg.updated_at = platform.now();
    platform.store().set_push_config(appid, Some(&cfg)).await?;
    Ok(cfg)
}

/// The WeChat-shaped event of an outbox row.
pub fn wire_event(original_id: &str, item: &OutboxItem) -> Event {
    let body = match &item.event {
        PushEvent::Popup { items } => EventBody::Popup(
            items
                .iter()
                .map(|i| PopupItem {
                    template_id: i.template_id.clone(),
                    status: i.status.clone(),
                    popup_scene: 0,
                })
                .collect(),
        ),
        PushEvent::Change { items } => EventBody::Change(
            items
                .iter()
                .map(|i| ChangeItem {
                    template_id: i.template_id.clone(),
                    status: i.status.clone(),
                })
                .collect(),
        ),
        PushEvent::Sent {
            template_id,
            msgid,
            error_code,
            error_status,
        } => EventBody::Sent(vec![SentItem {
            template_id: template_id.clone(),
            msg_id: *msgid,
            error_code: *error_code,
            error_status: error_status.clone(),
        }]),
        PushEvent::Extension { event, fields } => EventBody::Extension {
            event: event.clone(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), ExtValue::Str(v.clone())))
                .collect(),
        },
    };
    Event {
        to_user_name: original_id.to_owned(),
        from_user_name: item.openid.clone(),
        create_time: item.created_at.div_euclid(1000),
        body,
    }
}

/// A ready-to-send request: query pairs, body and content type.
pub struct PushRequest {
    pub query: Vec<(&'static str, String)>,
    pub body: String,
    pub content_type: &'static str,
}

/// Signs (and encrypts) one event the way WeChat does for the configured mode (§7.3).
pub fn build_request(
    cfg: &PushConfig,
    appid: &str,
    ev: &Event,
    now_secs: i64,
) -> Result<PushRequest, Error> {
    let format = match cfg.format {
        PushFormat::Xml => Format::Xml,
        PushFormat::Json => Format::Json,
    };
    let content_type = match cfg.format {
        PushFormat::Xml => "text/xml",
        PushFormat::Json => "application/json",
    };
    let timestamp = now_secs.to_string();
    let nonce = digits(10);
    let token = cfg.token.expose();
    let mut query = vec![
        ("signature", signature(&[token, &timestamp, &nonce])),
        ("timestamp", timestamp.clone()),
        ("nonce", nonce.clone()),
    ];
    let plaintext = ev.render(format);
    let body = match cfg.mode {
        PushMode::Plaintext => plaintext,
        PushMode::Compatible | PushMode::Safe => {
            let key = cfg
                .encoding_aes_key
                .as_ref()
                .ok_or_else(|| Error::Invalid("encoding_aes_key missing".into()))?;
            let crypt = MsgCrypt::new(key.expose(), appid)
                .map_err(|_| Error::Invalid("bad encoding_aes_key".into()))?;
            let encrypt = crypt.encrypt(&plaintext);
            query.push(("openid", ev.from_user_name.clone()));
            query.push(("encrypt_type", "aes".to_owned()));
            query.push((
                "msg_signature",
                signature(&[token, &timestamp, &nonce, &encrypt]),
            ));
            if cfg.mode == PushMode::Safe {
                event::safe_body(format, &ev.to_user_name, &encrypt)
            } else {
                event::compatible_body(format, ev, &encrypt)
            }
        }
    };
    Ok(PushRequest {
        query,
        body,
        content_type,
    })
}

/// Posts one event; Ok(status) when the receiver answered `success` or nothing.
async fn post(
    http: &reqwest::Client,
    url: &str,
    req: PushRequest,
) -> Result<u16, (Option<u16>, String)> {
    let resp = http
        .post(url)
        .query(&req.query)
        .header(reqwest::header::CONTENT_TYPE, req.content_type)
        .body(req.body)
        .send()
        .await
        .map_err(|e| (None, short_error(&e)))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|e| (Some(status), short_error(&e)))?;
    let reply = body.trim();
    if !(200..300).contains(&status) {
        return Err((Some(status), format!("HTTP {status}")));
    }
    if reply.is_empty() || reply == "success" {
        Ok(status)
    } else {
        let shown: String = reply.chars().take(80).collect();
        Err((
            Some(status),
            format!("unexpected reply {shown:?} (want \"success\" or empty)"),
        ))
    }
}

/// Delivers one claimed event and records the attempt.
/// The push config and the app of one app, read once per pass for all its events.
type Target = Arc<(Option<PushConfig>, Option<tuisong_core::store::App>)>;

async fn deliver(
    platform: &Platform,
    http: &reqwest::Client,
    settings: &PushSettings,
    item: OutboxItem,
    target: Target,
) -> anyhow::Result<()> {
    let store = platform.store();
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
    store.finish_push(&appid, &attempt, next).await?;
    Ok(())
}

/// One pass: claim what is due and deliver it, several users at once.
pub async fn push_once(
    platform: &Arc<Platform>,
    http: &reqwest::Client,
    settings: &PushSettings,
) -> anyhow::Result<usize> {
    let now = platform.now();
    let lease_until = now + settings.lease.as_millis() as i64;
    let items = platform
        .store()
        .claim_push(now, lease_until, settings.concurrency)
        .await?;
    let n = items.len();
    let mut targets: std::collections::HashMap<String, Target> = std::collections::HashMap::new();
    for item in &items {
        if !targets.contains_key(&item.appid) {
            let appid = AppId::from_trusted(item.appid.clone());
            let cfg = platform.store().get_push_config(&appid).await?;
            let app = platform.store().get_app(&appid).await?;
            targets.insert(item.appid.clone(), Arc::new((cfg, app)));
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

/// The push worker: delivers due events every tick until shutdown.
pub async fn run_pusher(
    platform: Arc<Platform>,
    http: reqwest::Client,
    settings: PushSettings,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => {
                // Drain what is due before waiting for the next tick.
                loop {
                    match push_once(&platform, &http, &settings).await {
                        Ok(n) if n >= settings.concurrency => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "push step failed; retrying next tick");
                            break;
                        }
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
