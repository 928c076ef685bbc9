//! Message push (消息推送), the HTTP side towards the app's own server: the client, WeChat's
//! GET handshake (the receiver check a config must pass before it is saved), and one
//! event as a request — signed, and in compatible or safe mode AES-encrypted,
//! byte-compatible with WeChat (spec §7, §8) — posted and its reply judged. The worker
//! that drains the outbox with these is `crate::workers::push`.
//!
//! Every request goes only where the address policy permits (`address`: public hosts
//! unless `push_allow_private`). What the caller learns of a failure is generic — the
//! policy's refusal, or that the check or attempt did not pass — so the server cannot be
//! used to map the networks it sits in; the detail goes to the debug log.

mod address;

pub use address::{AddressPolicy, Reach, UrlRefusal, classify, shown_url};

use address::{VettingResolver, logged_url, refused_in};
use std::sync::Arc;
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
    /// Events in flight at once, over all apps (one per user at most).
    pub concurrency: usize,
    /// Events of one app in flight at once: a receiver that hangs holds no more.
    pub per_app_concurrency: usize,
    /// Receivers may be on loopback, private and other internal addresses
    /// (`push_allow_private`; off: only public addresses).
    pub allow_private: bool,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retry_horizon: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            concurrency: 128,
            per_app_concurrency: 16,
            allow_private: false,
        }
    }
}

/// The HTTP client for developer servers: no redirects, no proxy, bounded time, and
/// connections only to addresses the policy permits.
#[derive(Clone)]
pub struct PushClient {
    http: reqwest::Client,
    policy: AddressPolicy,
}

impl PushClient {
    pub fn new(settings: &PushSettings) -> Self {
        let policy = AddressPolicy {
            allow_private: settings.allow_private,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(VettingResolver(policy)))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent("tuisong-push")
            .build()
            .unwrap_or_else(|e| panic!("the push HTTP client cannot be built: {e}"));
        Self { http, policy }
    }

    /// The URL to request, or why it may not be.
    fn target(&self, url: &str) -> Result<url::Url, UrlRefusal> {
        self.policy.vet_url(url)
    }
}

/// Why a request to a receiver did not go through, as far as the caller may know.
#[derive(Debug)]
enum Failure {
    /// The operator's address policy refused the host (safe to say).
    Refused(UrlRefusal),
    /// Connecting, sending or reading failed; the detail is only logged.
    Network(String),
}

fn failure(e: reqwest::Error) -> Failure {
    if refused_in(&e) {
        return Failure::Refused(UrlRefusal::Address);
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut detail = kind.to_owned();
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    Failure::Network(detail)
}

fn digits(n: usize) -> String {
    random_string(b"0123456789", n)
}

/// What a receiver that fails the check is told, whatever went wrong on the network: a
/// refused connection, a timeout, an HTTP status or a wrong echo must not tell apart
/// what listens where.
pub const HANDSHAKE_FAILED: &str =
    "handshake failed: the receiver did not complete WeChat's URL check (GET with echostr)";

/// WeChat's verification GET (spec §7.2): the server must answer the echostr.
pub async fn handshake(
    client: &PushClient,
    url: &str,
    token: &Secret,
    now_secs: i64,
) -> Result<(), Error> {
    let target = client
        .target(url)
        .map_err(|r| Error::Invalid(r.message().to_owned()))?;
    let timestamp = now_secs.to_string();
    let nonce = digits(10);
    let echostr = digits(19);
    let sig = signature(&[token.expose(), &timestamp, &nonce]);
    let sent = client
        .http
        .get(target)
        .query(&[
            ("signature", sig.as_str()),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
            ("echostr", &echostr),
        ])
        .send()
        .await;
    let cause = match sent {
        Err(e) => match failure(e) {
            Failure::Refused(r) => return Err(Error::Invalid(r.message().to_owned())),
            Failure::Network(detail) => detail,
        },
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                format!("answered HTTP {}", status.as_u16())
            } else if body.trim() != echostr {
                format!("did not echo echostr ({} bytes back)", body.len())
            } else {
                return Ok(());
            }
        }
    };
    tracing::debug!(url = %logged_url(url), %cause, "push receiver check failed");
    Err(Error::Invalid(HANDSHAKE_FAILED.to_owned()))
}

/// The receiver check of a push config: the AES key decodes for this appid and the
/// receiver answers WeChat's GET handshake. The rule that a config is saved only after
/// this passes is the platform's (`Platform::save_push_config`).
pub struct HttpReceiverCheck<'a>(pub &'a PushClient);

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

/// Posts one event; Ok(status) when the receiver answered `success` or nothing. The
/// error is what the delivery log shows: a status and a generic outcome, never the
/// reply's body or how a connection failed (that is logged at debug).
pub async fn post(
    client: &PushClient,
    url: &str,
    req: PushRequest,
) -> Result<u16, (Option<u16>, String)> {
    let target = client
        .target(url)
        .map_err(|r| (None, r.message().to_owned()))?;
    let sent = client
        .http
        .post(target)
        .query(&req.query)
        .header(reqwest::header::CONTENT_TYPE, req.content_type)
        .body(req.body)
        .send()
        .await;
    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => {
            return Err(match failure(e) {
                Failure::Refused(r) => (None, r.message().to_owned()),
                Failure::Network(detail) => {
                    tracing::debug!(url = %logged_url(url), cause = %detail, "push attempt failed");
                    (None, "no answer from the receiver".to_owned())
                }
            });
        }
    };
    let status = resp.status().as_u16();
    let body = match resp.text().await {
        Ok(body) => body,
        Err(e) => {
            if let Failure::Network(detail) = failure(e) {
                tracing::debug!(url = %logged_url(url), cause = %detail, "push reply unread");
            }
            return Err((Some(status), "the reply could not be read".to_owned()));
        }
    };
    let reply = body.trim();
    if !(200..300).contains(&status) {
        return Err((Some(status), format!("HTTP {status}")));
    }
    if reply.is_empty() || reply == "success" {
        Ok(status)
    } else {
        tracing::debug!(url = %logged_url(url), bytes = reply.len(), "push reply was not \"success\"");
        Err((
            Some(status),
            "unexpected reply (want \"success\" or empty)".to_owned(),
        ))
    }
}
