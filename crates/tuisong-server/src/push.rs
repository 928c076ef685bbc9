//! Message push (消息推送), the HTTP side towards the app's own server: the client, WeChat's
//! GET handshake (the receiver check a config must pass before it is saved), and one
//! event as a request — signed, and in compatible or safe mode AES-encrypted,
//! byte-compatible with WeChat (spec §7, §8) — posted and its reply judged. The worker
//! that drains the outbox with these is `crate::workers::push`.

use std::time::Duration;
use tuisong_core::Error;
use tuisong_core::ids::{AppId, Secret, random_string};
use tuisong_core::push::{OutboxItem, PushConfig, PushEvent, PushFormat, PushMode};
use tuisong_core::service::ReceiverCheck;
use tuisong_wire::crypto::{MsgCrypt, signature};
use tuisong_wire::event::{
    self, ChangeItem, Event, EventBody, ExtValue, Format, PopupItem, SentItem,
};

/// How the push worker delivers (`Settings::push`).
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

/// The receiver check of a push config: the AES key decodes for this appid and the
/// receiver answers WeChat's GET handshake. The rule that a config is saved only after
/// this passes is the platform's (`Platform::save_push_config`).
pub struct HttpReceiverCheck<'a>(pub &'a reqwest::Client);

#[async_trait::async_trait]
impl ReceiverCheck for HttpReceiverCheck<'_> {
    async fn check(&self, appid: &AppId, cfg: &PushConfig, now_secs: i64) -> Result<(), Error> {
        if let Some(k) = &cfg.encoding_aes_key {
            MsgCrypt::new(k.expose(), appid.as_str()).map_err(|_| {
                Error::Invalid("encoding_aes_key does not decode to a 32-byte AES key".into())
            })?;
        }
        handshake(self.0, &cfg.url, &cfg.token, now_secs).await
    }
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
pub async fn post(
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
