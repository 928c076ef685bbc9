//! The WeChat dialect's one error mapping: every domain error to the numeric `errcode`
//! and English `errmsg` of spec §1.3, §2, §3.3 and §4. The `match` is exhaustive on
//! purpose: a new domain error must be given its errcode here.
//!
//! Choices where the spec is silent (also in docs/API.md):
//! - an unknown but well-formed access token is 40001 ("not latest"), a malformed one
//!   40014, an expired one 42001, a replaced one past its grace period 40001;
//! - deltemplate with an unknown `priTmplId` is 200002 (bad input);
//! - a body that is not JSON is 47001 on every endpoint; an empty body 44002;
//! - push-policy refusals: app daily cap 45009, per-minute 45011, per-user caps 43108;
//! - errors that only the native API can produce map to 47001, and store failures to -1.

use tuisong_core::Error;
use tuisong_core::policy::CapRule;
use tuisong_core::template::TemplateError;

/// `(errcode, errmsg)` without the ` rid: …` suffix.
pub fn wx_error(e: &Error) -> (i64, String) {
    let fixed = |code: i64, msg: &str| (code, msg.to_owned());
    match e {
        Error::AppIdMissing => fixed(41002, "appid missing"),
        Error::AppIdInvalid => fixed(40013, "invalid appid"),
        Error::SecretMissing => fixed(41004, "appsecret missing"),
        Error::SecretInvalid => fixed(40125, "invalid appsecret"),
        Error::GrantTypeInvalid => fixed(40002, "invalid grant_type"),
        Error::RequirePost => fixed(43002, "require POST method"),
        Error::MinuteQuota => fixed(
            45011,
            "api minute-quota reach limit  mustslower  retry next minute",
        ),
        Error::DailyQuota => fixed(45009, "reach max api daily quota limit"),
        Error::TokenMissing => fixed(41001, "access_token missing"),
        Error::TokenInvalid => fixed(40014, "invalid access_token"),
        Error::TokenExpired => fixed(42001, "access_token expired"),
        Error::TokenNotLatest => fixed(
            40001,
            "invalid credential, access_token is invalid or not latest",
        ),
        Error::CodeMissing => fixed(41008, "missing code"),
        Error::CodeInvalid => fixed(40029, "invalid code"),
        Error::CodeUsed => fixed(40163, "code been used"),
        Error::EmptyBody => fixed(44002, "empty post data"),
        Error::BadFormat(_) => fixed(47001, "data format error"),
        Error::Template(TemplateError::TidInvalid) => fixed(200014, "invalid tid"),
        Error::Template(TemplateError::KidListInvalid) => fixed(200020, "invalid kidList"),
        Error::Template(TemplateError::SceneDescInvalid) => fixed(200021, "invalid sceneDesc"),
        Error::TemplateCap(_) => fixed(200012, "private template count reach limit"),
        Error::TemplateDuplicate => fixed(200022, "template already exists"),
        Error::IdsMissing => fixed(200018, "ids missing"),
        Error::IdsInvalid => fixed(200019, "invalid ids"),
        Error::StartInvalid => fixed(200016, "invalid start"),
        Error::LimitInvalid => fixed(200017, "invalid limit"),
        Error::PriTmplIdInvalid => fixed(200002, "invalid priTmplId"),
        Error::OpenIdInvalid => fixed(40003, "invalid openid"),
        Error::TemplateIdInvalid => fixed(40037, "invalid template_id"),
        Error::PageInvalid => fixed(41030, "invalid page"),
        Error::Template(TemplateError::DataInvalid { key, error, .. }) => {
            (47003, format!("argument invalid! data.{key}.value {error}"))
        }
        Error::NoConsent => fixed(43101, "user refuse to accept the msg"),
        Error::Capped(rule) => match rule {
            CapRule::AppDaily | CapRule::UrgentBudget => {
                fixed(45009, "reach max api daily quota limit")
            }
            CapRule::AppPerMinute => fixed(
                45011,
                "api minute-quota reach limit  mustslower  retry next minute",
            ),
            CapRule::PerUser | CapRule::PerUserTemplate => {
                fixed(43108, "too many messages to this user, try again later")
            }
        },
        Error::IdempotencyConflict | Error::TooLate(_) | Error::NotFound(_) | Error::Invalid(_) => {
            fixed(47001, "data format error")
        }
        Error::Unauthorized => fixed(40001, "invalid credential"),
        Error::Store(_) => fixed(-1, "system error"),
    }
}

/// A request id in WeChat's ` rid: xxxxxxxx-xxxxxxxx-xxxxxxxx` shape.
pub fn rid(now_secs: i64) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!(
        "{:08x}-{:08x}-{:08x}",
        now_secs as u32,
        rng.random::<u32>(),
        rng.random::<u32>()
    )
}

/// The errmsg with its rid suffix.
pub fn errmsg_with_rid(msg: &str, rid: &str) -> String {
    format!("{msg} rid: {rid}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tuisong_core::keyword::KeywordError;

    #[test]
    fn a_data_error_names_the_field_with_wechats_spelling() {
        let e = Error::Template(TemplateError::DataInvalid {
            key: "thing3".into(),
            error: KeywordError::Empty,
            reason: String::new(),
        });
        assert_eq!(
            wx_error(&e),
            (47003, "argument invalid! data.thing3.value is emtpy".into())
        );
        let e = Error::Template(TemplateError::DataInvalid {
            key: "time2".into(),
            error: KeywordError::Invalid,
            reason: String::new(),
        });
        assert_eq!(wx_error(&e).1, "argument invalid! data.time2.value invalid");
    }

    #[test]
    fn the_rid_has_three_groups_of_eight_hex_digits() {
        let r = rid(1_700_000_000);
        let parts: Vec<&str> = r.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|p| p.len() == 8 && p.chars().all(|c| c.is_ascii_hexdigit()))
        );
    }
}
