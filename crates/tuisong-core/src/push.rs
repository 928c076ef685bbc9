//! Message push (消息推送): the app's receiving-server configuration, the events queued
//! for it, and the retry schedule. Events are written to a durable outbox in the same
//! transaction as the thing that caused them; a worker in the server signs, encrypts and
//! POSTs them (spec §7, §8).
//!
//! Our `subscribe_msg_sent_event` codes (WeChat's catalogue of non-zero codes is
//! unconfirmed, spec §8.3): 0 `success` (a device acknowledged the message), 1001
//! `expired` (its TTL passed before delivery), 1002 `cancelled` and 1003 `recalled`
//! (stopped before delivery through /cancel or /recall).

use crate::clock::Millis;
use crate::ids::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A push config that WeChat's config page would refuse; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PushConfigError(pub String);

pub const SENT_SUCCESS: i64 = 0;
pub const SENT_EXPIRED: i64 = 1001;
pub const SENT_CANCELLED: i64 = 1002;
pub const SENT_RECALLED: i64 = 1003;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushFormat {
    Xml,
    Json,
}

/// 明文 / 兼容 / 安全 (spec §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushMode {
    Plaintext,
    Compatible,
    Safe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushConfig {
    pub url: String,
    pub token: Secret,
    /// Required for compatible and safe mode.
    pub encoding_aes_key: Option<Secret>,
    pub format: PushFormat,
    pub mode: PushMode,
    /// Also push our own events (delivered, opened, recalled, converted).
    pub extension_events: bool,
    pub updated_at: Millis,
}

impl PushConfig {
    /// Checks what WeChat's config page checks (spec §7.1). Ports other than 80/443 are
    /// allowed: a self-hosted receiver often listens elsewhere.
    pub fn validate(&self) -> Result<(), PushConfigError> {
        let url = self.url.trim();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| PushConfigError("url must start with http:// or https://".into()))?;
        if rest.is_empty()
            || rest.starts_with('/')
            || url.len() > 1024
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(PushConfigError(
                "url must be an absolute http(s) URL with a host".into(),
            ));
        }
        // A user name or password in the URL would be stored and shown back like any other
        // part of it; receivers authenticate WeChat's requests by the signature instead.
        // (A `\` does not end the authority here: parsers disagree on it, so an `@` after
        // one is refused too.)
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(PushConfigError(
                "url must not contain a user name or password".into(),
            ));
        }
        let t = self.token.expose();
        if !(3..=32).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PushConfigError(
                "token must be 3 to 32 letters or digits".into(),
            ));
        }
        match &self.encoding_aes_key {
            Some(k) => {
                let k = k.expose();
                if k.len() != 43
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
                {
                    return Err(PushConfigError(
                        "encoding_aes_key must be 43 characters of A-Z, a-z, 0-9, + and /".into(),
                    ));
                }
            }
            None if self.mode != PushMode::Plaintext => {
                return Err(PushConfigError(
                    "encoding_aes_key is required in compatible and safe mode".into(),
                ));
            }
            None => {}
        }
        Ok(())
    }
}

/// Shows a secret's first and last two characters only.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 4))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptItem {
    pub template_id: String,
    pub status: String,
}

/// What the outbox holds: an event without its envelope (the envelope — original id,
/// openid, CreateTime — comes from the outbox row and the app).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushEvent {
    /// `subscribe_msg_popup_event`.
    Popup { items: Vec<PromptItem> },
    /// `subscribe_msg_change_event` (rejections only, as WeChat).
    Change { items: Vec<PromptItem> },
    /// `subscribe_msg_sent_event`.
    Sent {
        template_id: String,
        msgid: u64,
        error_code: i64,
        error_status: String,
    },
    /// One of our own events, `tuisong_msg_*`; flat string fields.
    Extension {
        event: String,
        fields: BTreeMap<String, String>,
    },
}

impl PushEvent {
    pub fn name(&self) -> &str {
        match self {
            PushEvent::Popup { .. } => "subscribe_msg_popup_event",
            PushEvent::Change { .. } => "subscribe_msg_change_event",
            PushEvent::Sent { .. } => "subscribe_msg_sent_event",
            PushEvent::Extension { event, .. } => event,
        }
    }
    pub fn is_extension(&self) -> bool {
        matches!(self, PushEvent::Extension { .. })
    }
    /// An extension event about one message.
    pub fn extension(event: &str, template_id: &str, msgid: u64, extra: &[(&str, String)]) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert("TemplateId".to_owned(), template_id.to_owned());
        fields.insert("MsgID".to_owned(), msgid.to_string());
        for (k, v) in extra {
            fields.insert((*k).to_owned(), v.clone());
        }
        PushEvent::Extension {
            event: event.to_owned(),
            fields,
        }
    }
}

/// A claimed outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub appid: String,
    pub openid: String,
    pub event: PushEvent,
    pub attempts: u32,
    pub created_at: Millis,
}

/// How many outbox rows one claim may take: `total` in all, and per app at most
/// `per_app` minus that app's attempts already in flight (`in_flight`, by appid), so a
/// receiver that hangs only ever holds its own app's share. Apps get their share in
/// turns: every app's oldest due event comes before any app's second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimLimits {
    pub total: usize,
    pub per_app: usize,
    pub in_flight: BTreeMap<String, usize>,
}

impl ClaimLimits {
    /// Up to `total` rows with no per-app bound beyond the total.
    pub fn up_to(total: usize) -> Self {
        Self {
            total,
            per_app: total,
            in_flight: BTreeMap::new(),
        }
    }
}

/// One delivery attempt, as `GET /v1/push-config/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAttempt {
    pub at: Millis,
    pub outbox_id: i64,
    pub event: String,
    pub openid: String,
    pub attempt: u32,
    pub ok: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// What happens next: "delivered", "retry at <ms>", "gave up".
    pub outcome: String,
}

/// The delay before retry number `attempt` (1-based): quick first, then longer, capped at
/// two hours; `jitter` in [0, 1) spreads retries ±20 %.
pub fn retry_delay(attempt: u32, jitter: f64) -> Millis {
    const SCHEDULE: [Millis; 8] = [
        5_000, 15_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
    ];
    let base = SCHEDULE[(attempt.saturating_sub(1) as usize).min(SCHEDULE.len() - 1)];
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    (base as f64 * factor) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: PushMode, key: Option<&str>) -> PushConfig {
        PushConfig {
            url: "https://example.com/wx".into(),
            token: Secret::new("AAAAA"),
            encoding_aes_key: key.map(Secret::new),
            format: PushFormat::Json,
            mode,
            extension_events: false,
            updated_at: 0,
        }
    }

    #[test]
    fn a_config_is_checked_like_wechats_page() {
        assert!(cfg(PushMode::Plaintext, None).validate().is_ok());
        assert!(cfg(PushMode::Safe, None).validate().is_err());
        assert!(
            cfg(PushMode::Safe, Some(&"A".repeat(43)))
                .validate()
                .is_ok()
        );
        assert!(
            cfg(PushMode::Safe, Some(&"A".repeat(42)))
                .validate()
                .is_err()
        );
        let mut c = cfg(PushMode::Plaintext, None);
        c.url = "ftp://x".into();
        assert!(c.validate().is_err());
        c.url = "http://".into();
        assert!(c.validate().is_err());
        c.url = "http://127.0.0.1:9000/cb".into();
        assert!(c.validate().is_ok());
        for with_user in [
            "http://user:pw@example.com/cb",
            "https://token@example.com",
            "http://example.com\\@127.0.0.1/",
        ] {
            c.url = with_user.into();
            assert!(c.validate().is_err(), "{with_user}");
        }
        c.url = "https://example.com/cb?to=a@b".into();
        assert!(c.validate().is_ok(), "an @ in the query is not a user name");
        c.token = Secret::new("a b");
        assert!(c.validate().is_err());
    }

    #[test]
    fn retries_start_quick_and_grow_to_a_cap() {
        assert_eq!(retry_delay(1, 0.5), 5_000);
        assert!(retry_delay(2, 0.5) > retry_delay(1, 0.5));
        assert_eq!(retry_delay(50, 0.5), 7_200_000);
        assert!(retry_delay(1, 0.0) >= 4_000 && retry_delay(1, 0.999) <= 6_000);
    }

    #[test]
    fn masking_shows_only_the_ends() {
        assert_eq!(mask("AAAAAAAABB"), "AA******BB");
        assert_eq!(mask("abc"), "***");
    }
}
