//! The values of a send other than ids: the page a card opens, its language, the mini
//! program version it opens in, the TTL and the idempotency key. Each one parses once at
//! the edge (both dialects call [`crate::service::RawSend::parse`]), so the rules, the
//! store and the wire never see a raw string for them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest a message may be scheduled ahead or live before it expires: 30 days.
pub const MAX_AHEAD_SECS: u64 = 30 * 86_400;

/// The mini program page a card opens: a relative path with an optional query
/// (`pages/index?foo=1`), at most 1,024 bytes, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Page(String);

impl Page {
    /// None when the page breaks a rule (WeChat answers 41030).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && !s.starts_with('/')
            && s.len() <= 1024
            && !s.chars().any(|c| c.is_control() || c.is_whitespace());
        ok.then(|| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Wraps a value read back from our own store, which only ever holds parsed pages.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        pub enum $name {
            $(
                $(#[$vm])*
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
            /// Exactly one of the names; anything else is None.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The language a card is shown in (WeChat's `lang`); the default is WeChat's.
    Lang {
        #[default]
        ZhCn = "zh_CN",
        EnUs = "en_US",
        ZhHk = "zh_HK",
        ZhTw = "zh_TW",
    }
);

string_enum!(
    /// Which version of the mini program a card opens (WeChat's `miniprogram_state`); the
    /// default is WeChat's.
    MiniprogramState {
        Developer = "developer",
        Trial = "trial",
        #[default]
        Formal = "formal",
    }
);

/// How long an undelivered message lives after its send time: 1 s to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ttl(u64);

impl Ttl {
    pub fn from_secs(secs: u64) -> Option<Self> {
        (1..=MAX_AHEAD_SECS).contains(&secs).then_some(Self(secs))
    }
    pub fn secs(self) -> u64 {
        self.0
    }
    pub fn millis(self) -> i64 {
        self.0 as i64 * 1000
    }
}

/// The caller's key that makes a retried send a replay: 1 to 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.len() <= 255).then(|| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_relative_short_and_without_spaces() {
        assert!(Page::parse("pages/index?id=1").is_some());
        assert!(Page::parse("").is_none());
        assert!(Page::parse("/pages/index").is_none());
        assert!(Page::parse("pages/a b").is_none());
        assert!(Page::parse("pages/\u{7}").is_none());
        assert!(Page::parse(&"p".repeat(1024)).is_some());
        assert!(Page::parse(&"p".repeat(1025)).is_none());
    }

    #[test]
    fn lang_and_state_take_only_wechats_names_and_default_as_wechat_does() {
        for l in Lang::ALL {
            assert_eq!(Lang::parse(l.as_str()), Some(*l));
        }
        assert_eq!(Lang::parse("zh_cn"), None);
        assert_eq!(Lang::default(), Lang::ZhCn);
        assert_eq!(
            MiniprogramState::parse("trial"),
            Some(MiniprogramState::Trial)
        );
        assert_eq!(MiniprogramState::parse("release"), None);
        assert_eq!(MiniprogramState::default(), MiniprogramState::Formal);
        assert_eq!(
            serde_json::to_string(&Lang::EnUs).expect("serializes"),
            "\"en_US\""
        );
    }

    #[test]
    fn ttl_and_key_bounds() {
        assert!(Ttl::from_secs(0).is_none());
        assert_eq!(Ttl::from_secs(1).map(Ttl::millis), Some(1000));
        assert!(Ttl::from_secs(MAX_AHEAD_SECS).is_some());
        assert!(Ttl::from_secs(MAX_AHEAD_SECS + 1).is_none());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
    }
}
