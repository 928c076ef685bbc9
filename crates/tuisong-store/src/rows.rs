//! Row → record mapping, written once for both stores. Both schemas keep the same column
//! order for every record, so a mapping reads a row through [`Cells`] (typed getters that
//! `rusqlite::Row` and `tokio_postgres::Row` each implement) and each backend keeps only
//! its own error type. The column lists the mappings expect live here too.

use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsentState, Decision};
use tuisong_core::ids::{AppId, MsgId, OpenId, Secret, TemplateId, UserId};
use tuisong_core::library::TemplateKind;
use tuisong_core::push::{OutboxItem, PushAttempt};
use tuisong_core::store::{
    AccessToken, App, CodeOutcome, EntryKind, InboxEntry, Message, MessageStatus, StatRow,
    StoreError, Subscriber, TimelineEvent, TokenKind, User,
};
use tuisong_core::template::PrivateTemplate;
use tuisong_core::values::{Lang, MiniprogramState};

/// One result row, read by position.
pub(crate) trait Cells {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn flag(&self, i: usize) -> Result<bool, Self::Error>;
    fn real(&self, i: usize) -> Result<f64, Self::Error>;
    /// The error for a value the store should never hold.
    fn corrupt(what: &str) -> Self::Error;

    /// An integer column that must fit `T`.
    fn num<T: TryFrom<i64>>(&self, i: usize, what: &str) -> Result<T, Self::Error> {
        T::try_from(self.int(i)?).map_err(|_| Self::corrupt(what))
    }
    fn json<T: serde::de::DeserializeOwned>(&self, i: usize, what: &str) -> Result<T, Self::Error> {
        serde_json::from_str(&self.text(i)?).map_err(|_| Self::corrupt(what))
    }
}

pub(crate) const APP_COLS: &str = "appid, name, secret, original_id, created_at";
pub(crate) const TOKEN_COLS: &str = "token, appid, kind, created_at, expires_at, superseded";
pub(crate) const USER_COLS: &str = "user_id, nickname, token_hash, created_at";
pub(crate) const SUBSCRIBER_COLS: &str = "appid, openid, user_id, main_switch";
pub(crate) const TEMPLATE_COLS: &str =
    "pri_tmpl_id, appid, tid, title, kind, keywords, scene_desc, created_at";
pub(crate) const CONSENT_COLS: &str =
    "tmpl_id, status, remaining, switched_off, kept, granted_total, consumed_total, updated_at";
pub(crate) const ATTEMPT_COLS: &str =
    "at, outbox_id, event, openid, attempt, ok, http_status, error, duration_ms, outcome";
pub(crate) const OUTBOX_COLS: &str = "id, appid, openid, event, attempts, created_at";
pub(crate) const PENDING: &str = "('scheduled', 'held', 'accepted')";

/// The 16 columns [`message_at`] maps, as a macro so queries can `concat!` it.
macro_rules! message_cols {
    () => {
        "m.msgid, m.appid, m.openid, m.user_id, m.tmpl_id, m.title, m.page, m.rows, m.lang, \
         m.miniprogram_state, m.status, m.created_at, m.urgent, m.release_at, m.expires_at, \
         m.delivered_at"
    };
}
pub(crate) use message_cols;

pub(crate) fn app<R: Cells>(r: &R) -> Result<App, R::Error> {
    Ok(App {
        appid: AppId::from_trusted(r.text(0)?),
        name: r.text(1)?,
        secret: Secret::new(r.text(2)?),
        original_id: r.text(3)?,
        created_at: r.int(4)?,
    })
}

pub(crate) fn token<R: Cells>(r: &R) -> Result<AccessToken, R::Error> {
    Ok(AccessToken {
        token: r.text(0)?,
        appid: AppId::from_trusted(r.text(1)?),
        kind: TokenKind::parse(&r.text(2)?).ok_or_else(|| R::corrupt("token kind"))?,
        created_at: r.int(3)?,
        expires_at: r.int(4)?,
        superseded: r.flag(5)?,
    })
}

pub(crate) fn user<R: Cells>(r: &R) -> Result<User, R::Error> {
    Ok(User {
        user_id: UserId::from_trusted(r.text(0)?),
        nickname: r.text(1)?,
        token_hash: r.text(2)?,
        created_at: r.int(3)?,
    })
}

pub(crate) fn subscriber<R: Cells>(r: &R) -> Result<Subscriber, R::Error> {
    Ok(Subscriber {
        appid: AppId::from_trusted(r.text(0)?),
        openid: OpenId::from_trusted(r.text(1)?),
        user_id: UserId::from_trusted(r.text(2)?),
        main_switch: r.flag(3)?,
    })
}

pub(crate) fn template<R: Cells>(r: &R) -> Result<PrivateTemplate, R::Error> {
    let kind: u8 = r.num(4, "template kind")?;
    Ok(PrivateTemplate {
        id: TemplateId::from_trusted(r.text(0)?),
        appid: AppId::from_trusted(r.text(1)?),
        tid: r.num(2, "template tid")?,
        title: r.text(3)?,
        kind: TemplateKind::try_from(kind).map_err(|_| R::corrupt("template kind"))?,
        keywords: r.json(5, "template keywords")?,
        scene_desc: r.text(6)?,
        created_at: r.int(7)?,
    })
}

fn decision<R: Cells>(r: &R, i: usize) -> Result<Option<Decision>, R::Error> {
    match r.opt_text(i)? {
        None => Ok(None),
        Some(s) => Decision::parse(&s)
            .map(Some)
            .ok_or_else(|| R::corrupt("decision")),
    }
}

pub(crate) fn consent<R: Cells>(r: &R) -> Result<ConsentState, R::Error> {
    Ok(ConsentState {
        template_id: TemplateId::from_trusted(r.text(0)?),
        status: decision(r, 1)?,
        remaining: r.num(2, "consent remaining")?,
        switched_off: r.flag(3)?,
        kept: decision(r, 4)?,
        granted_total: r.num(5, "consent granted_total")?,
        consumed_total: r.num(6, "consent consumed_total")?,
        updated_at: r.int(7)?,
    })
}

pub(crate) fn msgid<E>(id: i64, corrupt: impl FnOnce(&str) -> E) -> Result<MsgId, E> {
    u64::try_from(id).map(MsgId).map_err(|_| corrupt("msgid"))
}

pub(crate) fn status<E>(s: &str, corrupt: impl FnOnce(&str) -> E) -> Result<MessageStatus, E> {
    MessageStatus::parse(s).ok_or_else(|| corrupt("message status"))
}

/// Maps the 16 columns of `message_cols!` starting at `at`.
pub(crate) fn message_at<R: Cells>(r: &R, at: usize) -> Result<Message, R::Error> {
    Ok(Message {
        msgid: msgid(r.int(at)?, R::corrupt)?,
        appid: AppId::from_trusted(r.text(at + 1)?),
        openid: OpenId::from_trusted(r.text(at + 2)?),
        user_id: UserId::from_trusted(r.text(at + 3)?),
        template_id: TemplateId::from_trusted(r.text(at + 4)?),
        title: r.text(at + 5)?,
        page: r.opt_text(at + 6)?,
        rows: r.json(at + 7, "message rows")?,
        lang: Lang::parse(&r.text(at + 8)?).ok_or_else(|| R::corrupt("message lang"))?,
        miniprogram_state: MiniprogramState::parse(&r.text(at + 9)?)
            .ok_or_else(|| R::corrupt("message miniprogram_state"))?,
        status: status(&r.text(at + 10)?, R::corrupt)?,
        created_at: r.int(at + 11)?,
        urgent: r.flag(at + 12)?,
        release_at: r.int(at + 13)?,
        expires_at: r.opt_int(at + 14)?,
        delivered_at: r.opt_int(at + 15)?,
    })
}

pub(crate) fn message<R: Cells>(r: &R) -> Result<Message, R::Error> {
    message_at(r, 0)
}

/// `i.seq, i.kind, message_cols!()` of one of `user_id`'s entries.
pub(crate) fn inbox_entry<R: Cells>(r: &R, user_id: &UserId) -> Result<InboxEntry, R::Error> {
    Ok(InboxEntry {
        user_id: user_id.clone(),
        seq: r.num(0, "inbox seq")?,
        kind: EntryKind::parse(&r.text(1)?).ok_or_else(|| R::corrupt("entry kind"))?,
        message: message_at(r, 2)?,
    })
}

pub(crate) fn timeline_event<R: Cells>(r: &R) -> Result<TimelineEvent, R::Error> {
    Ok(TimelineEvent {
        at: r.int(0)?,
        event: r.text(1)?,
        device: r.opt_text(2)?,
        detail: r.opt_text(3)?,
    })
}

pub(crate) fn attempt<R: Cells>(r: &R) -> Result<PushAttempt, R::Error> {
    Ok(PushAttempt {
        at: r.int(0)?,
        outbox_id: r.int(1)?,
        event: r.text(2)?,
        openid: r.text(3)?,
        attempt: r.num(4, "push attempt number")?,
        ok: r.flag(5)?,
        http_status: r
            .opt_int(6)?
            .map(|s| u16::try_from(s).map_err(|_| R::corrupt("push http status")))
            .transpose()?,
        error: r.opt_text(7)?,
        duration_ms: r.num(8, "push duration")?,
        outcome: r.text(9)?,
    })
}

/// The columns of `OUTBOX_COLS`.
pub(crate) fn outbox_item<R: Cells>(r: &R) -> Result<OutboxItem, R::Error> {
    Ok(OutboxItem {
        id: r.int(0)?,
        appid: r.text(1)?,
        openid: r.text(2)?,
        event: r.json(3, "push event")?,
        attempts: r.num(4, "push attempts")?,
        created_at: r.int(5)?,
    })
}

/// `hour, tmpl_id, metric, count, value`.
pub(crate) fn stat<R: Cells>(r: &R) -> Result<StatRow, R::Error> {
    Ok(StatRow {
        hour: r.int(0)?,
        template_id: r.text(1)?,
        metric: r.text(2)?,
        count: r.num(3, "stat count")?,
        value: r.real(4)?,
    })
}

/// What a login code use comes to: `taken` rows changed by the conditional update, then
/// `openid, session_key, used_at` of the code if it exists for the app.
pub(crate) fn code_outcome<R: Cells>(taken: u64, row: Option<&R>) -> Result<CodeOutcome, R::Error> {
    let Some(r) = row else {
        return Ok(CodeOutcome::Unknown);
    };
    Ok(match (taken, r.opt_int(2)?) {
        (1, _) => CodeOutcome::Valid {
            openid: OpenId::from_trusted(r.text(0)?),
            session_key: r.text(1)?,
        },
        (_, Some(_)) => CodeOutcome::Used,
        (_, None) => CodeOutcome::Expired,
    })
}

/// A JSON document kept in a text column (policy, quiet hours, push config).
pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    what: &str,
) -> Result<Option<T>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))))
        .transpose()
}

/// The text kept for a JSON document.
pub(crate) fn doc<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The start of the hour counters are kept per.
pub(crate) fn hour_of(now: Millis) -> Millis {
    now.div_euclid(3_600_000) * 3_600_000
}
