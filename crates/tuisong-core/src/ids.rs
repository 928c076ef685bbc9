//! Identifier newtypes. Each one parses (refusing malformed input before it reaches the
//! store) and knows how to mint a fresh value in the shape WeChat uses, so that SDKs that
//! check formats (AppId = `wx` + 16, openid 28 chars, priTmplId 43 chars) accept ours.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const HEX: &[u8] = b"0123456789abcdef";

/// `n` random characters from `alphabet`.
pub fn random_string(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// `n` random lowercase hex characters.
pub fn random_hex(n: usize) -> String {
    random_string(HEX, n)
}

/// `n` random URL-safe characters (`A-Za-z0-9_-`).
pub fn random_url_safe(n: usize) -> String {
    random_string(URL_SAFE, n)
}

fn all_in(s: &str, alphabet: &[u8]) -> bool {
    s.bytes().all(|b| alphabet.contains(&b))
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Wraps a value read back from our own store, which only ever holds parsed ids.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A mini program's AppID: `wx` followed by 16 lowercase hex characters.
    AppId
);
string_id!(
    /// A user's id inside one app (28 characters, URL-safe, starting with `o`).
    OpenId
);
string_id!(
    /// A private template id (`priTmplId`): 43 URL-safe characters.
    TemplateId
);
string_id!(
    /// A person using devices; owns one openid per app.
    UserId
);

impl AppId {
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("wx")?;
        (rest.len() == 16 && all_in(rest, HEX)).then(|| Self(s.to_owned()))
    }
    pub fn generate() -> Self {
        Self(format!("wx{}", random_hex(16)))
    }
}

impl OpenId {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 28 && s.starts_with('o') && all_in(s, URL_SAFE)).then(|| Self(s.to_owned()))
    }
    pub fn generate() -> Self {
        Self(format!("o{}", random_url_safe(27)))
    }
}

impl TemplateId {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 43 && all_in(s, URL_SAFE)).then(|| Self(s.to_owned()))
    }
    pub fn generate() -> Self {
        Self(random_url_safe(43))
    }
}

impl UserId {
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix('u')?;
        (rest.len() == 16 && all_in(rest, HEX)).then(|| Self(s.to_owned()))
    }
    pub fn generate() -> Self {
        Self(format!("u{}", random_hex(16)))
    }
}

/// A message id. Assigned by the store (a sequence), so unique across nodes; kept below
/// 2^53 so JavaScript clients read it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MsgId(pub u64);

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The `gh_…` original id of an app (`ToUserName` in pushed events).
pub fn generate_original_id() -> String {
    format!("gh_{}", random_hex(12))
}

/// An app secret: 32 lowercase hex characters.
pub fn generate_secret() -> String {
    random_hex(32)
}

/// A secret value whose `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        for _ in 0..200 {
            let a = AppId::generate();
            assert_eq!(AppId::parse(a.as_str()), Some(a));
            let o = OpenId::generate();
            assert_eq!(OpenId::parse(o.as_str()), Some(o));
            let t = TemplateId::generate();
            assert_eq!(TemplateId::parse(t.as_str()), Some(t));
            let u = UserId::generate();
            assert_eq!(UserId::parse(u.as_str()), Some(u));
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "wx",
            "wx123",
            "wxABCDEF0123456789",
            "ab0123456789abcdef",
            "wx0123456789abcdef0",
        ] {
            assert!(AppId::parse(bad).is_none(), "{bad}");
        }
        assert!(OpenId::parse("o6_bmjrPTlm6_2sgVt7hMZOPfL2M").is_some());
        assert!(OpenId::parse("x6_bmjrPTlm6_2sgVt7hMZOPfL2M").is_none());
        assert!(OpenId::parse("o6_bmjrPTlm6_2sgVt7hMZOPfL2").is_none());
        assert!(OpenId::parse("o6_bmjrPTlm6_2sgVt7hMZOPfL2!").is_none());
        assert!(TemplateId::parse("9Aw5ZV1j9xdWTFEkqCpZ7jWySL7aGN6rQom4gXINfJs").is_some());
        assert!(TemplateId::parse("9Aw5ZV1j9xdWTFEkqCpZ7jWySL7aGN6rQom4gXINfJ").is_none());
        assert!(TemplateId::parse("中文").is_none());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("abc")), "[redacted]");
    }
}
