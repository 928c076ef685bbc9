//! Domain errors. Every way a request can fail is a variant here; each wire dialect maps
//! them with one exhaustive `match` (WeChat errcodes in `tuisong-wire`, HTTP statuses in
//! the /v1 layer), so adding a variant forces every dialect to decide what it means.
//! The rules' own modules (template, policy, push) return their own small errors, which
//! convert into these: `error` sits above them, so no module imports in a circle.

use crate::policy::{CapRule, PolicyError};
use crate::push::PushConfigError;
use crate::store::StoreError;
use crate::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- credentials (token and login endpoints)
    #[error("appid missing")]
    AppIdMissing,
    #[error("invalid appid")]
    AppIdInvalid,
    #[error("appsecret missing")]
    SecretMissing,
    #[error("invalid appsecret")]
    SecretInvalid,
    #[error("invalid grant_type")]
    GrantTypeInvalid,
    #[error("require POST method")]
    RequirePost,
    #[error("api minute-quota reach limit  mustslower  retry next minute")]
    MinuteQuota,
    #[error("reach max api daily quota limit")]
    DailyQuota,

    // ---- access token on business endpoints
    #[error("access_token missing")]
    TokenMissing,
    #[error("invalid access_token")]
    TokenInvalid,
    #[error("access_token expired")]
    TokenExpired,
    #[error("invalid credential, access_token is invalid or not latest")]
    TokenNotLatest,

    // ---- login code
    #[error("missing code")]
    CodeMissing,
    #[error("invalid code")]
    CodeInvalid,
    #[error("code been used")]
    CodeUsed,

    // ---- request bodies
    #[error("empty post data")]
    EmptyBody,
    #[error("data format error: {0}")]
    BadFormat(String),

    // ---- template management
    /// A template's own rules: tid, kidList, sceneDesc, and a send's data.
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template count reaches the limit of {0}")]
    TemplateCap(usize),
    #[error("a template with the same title and keywords already exists")]
    TemplateDuplicate,
    #[error("ids missing")]
    IdsMissing,
    #[error("invalid ids")]
    IdsInvalid,
    #[error("invalid start")]
    StartInvalid,
    #[error("invalid limit")]
    LimitInvalid,
    #[error("invalid priTmplId")]
    PriTmplIdInvalid,

    // ---- send
    #[error("invalid openid")]
    OpenIdInvalid,
    #[error("invalid template_id")]
    TemplateIdInvalid,
    #[error("invalid page")]
    PageInvalid,
    #[error("user refuse to accept the msg")]
    NoConsent,
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    #[error("refused by the {} rule of the push policy", .0.as_str())]
    Capped(CapRule),
    #[error("the message is already {0}")]
    TooLate(&'static str),

    // ---- admin, device and /v1 lookups
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("unauthorized")]
    Unauthorized,

    // ---- the store
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<PolicyError> for Error {
    fn from(e: PolicyError) -> Self {
        Error::Invalid(e.0)
    }
}

impl From<PushConfigError> for Error {
    fn from(e: PushConfigError) -> Self {
        Error::Invalid(e.0)
    }
}
