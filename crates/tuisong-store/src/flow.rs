//! The multi-step writes both stores make, written once: the atomic send, cancel and
//! recall, the end of a pending message (TTL or cancel), acks, opens and timeline events
//! with the push events they cause. Each runs over [`Steps`]: the few statements a
//! backend runs in its own SQL dialect inside its own transaction (SQLite: the writer's
//! savepoint; PostgreSQL: a [`crate::postgres`] transaction). The order of the steps is
//! the contract; a backend only decides how each one is written (and, on PostgreSQL,
//! which rows it locks while doing so).

use tuisong_core::clock::Millis;
use tuisong_core::consent::{ConsumeRule, PromptEffect};
use tuisong_core::ids::{MsgId, UserId};
use tuisong_core::push::{PromptItem, PushEvent, SENT_CANCELLED, SENT_RECALLED, SENT_SUCCESS};
use tuisong_core::store::{
    EntryKind, InboxEntry, Message, MessageStatus, NewMessage, SendOutcome, StopOutcome,
};

/// Savepoint statements, the same text in both dialects.
pub(crate) const SAVEPOINT: &str = "SAVEPOINT send_step";
pub(crate) const RELEASE: &str = "RELEASE SAVEPOINT send_step";
pub(crate) const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT send_step; RELEASE SAVEPOINT send_step";

/// How a consumed grant is recorded on the message (`consume_rule`).
pub(crate) fn rule_name(rule: ConsumeRule) -> &'static str {
    match rule {
        ConsumeRule::OneTime => "one_time",
        ConsumeRule::LongTerm => "long_term",
    }
}

/// The statements of one backend inside one transaction. Async so PostgreSQL can await
/// its round trips; SQLite's are synchronous and finish on the first poll ([`ready`]).
#[allow(async_fn_in_trait)] // crate-private; every caller names the concrete type
pub(crate) trait Steps {
    type Error;
    fn corrupt(what: &str) -> Self::Error;
    fn json<T: serde::Serialize>(v: &T) -> Result<String, Self::Error>;

    async fn batch(&mut self, sql: &str) -> Result<(), Self::Error>;
    /// (msgid, request hash) of the app's message with this idempotency key. PostgreSQL
    /// first makes sends with one key wait for each other.
    async fn prior_send(
        &mut self,
        appid: &str,
        key: &str,
    ) -> Result<Option<(i64, Option<String>)>, Self::Error>;
    /// (user_id, main switch) of the subscriber.
    async fn recipient(
        &mut self,
        appid: &str,
        openid: &str,
    ) -> Result<Option<(String, bool)>, Self::Error>;
    /// The conditional consume of the message's grant; true when it took one.
    async fn take_grant(&mut self, m: &NewMessage) -> Result<bool, Self::Error>;
    /// One unit of a windowed counter unless it is at its limit.
    async fn take_unit(
        &mut self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, Self::Error>;
    /// Inserts the message row; returns its msgid.
    async fn insert_message(&mut self, row: &MessageRow<'_>) -> Result<i64, Self::Error>;
    /// Counts `metric` (with `value`) for a template in the hour of `now`.
    async fn bump(
        &mut self,
        appid: &str,
        tmpl: &str,
        now: Millis,
        metric: &str,
        value: f64,
    ) -> Result<(), Self::Error>;
    async fn event(
        &mut self,
        msgid: i64,
        now: Millis,
        name: &str,
        device: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), Self::Error>;
    /// Appends an entry to the user's inbox with the next seq (no gaps).
    async fn push_entry(
        &mut self,
        user_id: &str,
        kind: EntryKind,
        msgid: i64,
        now: Millis,
    ) -> Result<u64, Self::Error>;
    async fn load_message(&mut self, msgid: i64) -> Result<Message, Self::Error>;
    /// The (appid, openid, template id) of a message.
    async fn message_keys(&mut self, msgid: i64) -> Result<(String, String, String), Self::Error>;
    /// Queues a push event (nothing without a push config, no extension events unless the
    /// app opted in).
    async fn enqueue(
        &mut self,
        appid: &str,
        openid: &str,
        ev: &PushEvent,
        now: Millis,
    ) -> Result<(), Self::Error>;
    /// Gives a message's one-time grant back; true if one was given.
    async fn refund(&mut self, msgid: i64) -> Result<bool, Self::Error>;
    /// (status, user_id) of the app's message; PostgreSQL locks the row.
    async fn stop_target(
        &mut self,
        appid: &str,
        msgid: i64,
    ) -> Result<Option<(String, String)>, Self::Error>;
    /// Moves a message to a final state.
    async fn set_final(&mut self, msgid: i64, status: &str, now: Millis)
    -> Result<(), Self::Error>;
    /// Whether the message exists and belongs to the app (`by_user` false) or the user.
    async fn owns(&mut self, owner: &str, by_user: bool, msgid: i64) -> Result<bool, Self::Error>;
    /// Records a device's delivery; true if this device had not acked it before.
    async fn record_delivery(
        &mut self,
        msgid: i64,
        device: &str,
        now: Millis,
    ) -> Result<bool, Self::Error>;
    /// `accepted` → `delivered`; true if this call made it so.
    async fn mark_delivered(&mut self, msgid: i64, now: Millis) -> Result<bool, Self::Error>;
    /// The user's message, if it is the user's.
    async fn user_message(
        &mut self,
        user_id: &str,
        msgid: i64,
    ) -> Result<Option<Message>, Self::Error>;
    async fn mark_opened(&mut self, msgid: i64, now: Millis) -> Result<(), Self::Error>;
}

/// What the message insert writes beside the `NewMessage` itself.
pub(crate) struct MessageRow<'a> {
    pub m: &'a NewMessage,
    pub user_id: &'a str,
    pub status: MessageStatus,
    pub release_at: Millis,
    pub rule: &'static str,
    pub rows: String,
    pub data: String,
    pub key: Option<&'a str>,
    pub hash: Option<&'a str>,
}

/// Runs a future that never waits (SQLite's steps) to its end on this thread.
pub(crate) fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("a synchronous step waited"),
    }
}

/// The atomic send step: idempotency, recipient, consent, caps, insert, inbox entry.
pub(crate) async fn send<S: Steps>(s: &mut S, m: &NewMessage) -> Result<SendOutcome, S::Error> {
    if let Some((key, hash)) = &m.idempotency
        && let Some((id, prior)) = s.prior_send(m.appid.as_str(), key.as_str()).await?
    {
        return Ok(if prior.as_deref() == Some(hash.as_str()) {
            SendOutcome::Replayed(crate::rows::msgid(id, S::corrupt)?)
        } else {
            SendOutcome::IdempotencyConflict
        });
    }
    let Some((user_id, main_switch)) = s.recipient(m.appid.as_str(), m.openid.as_str()).await?
    else {
        return Ok(SendOutcome::UnknownOpenId);
    };
    if !main_switch {
        return Ok(SendOutcome::NoConsent);
    }
    // The grant and the caps are taken together or not at all.
    s.batch(SAVEPOINT).await?;
    if !s.take_grant(m).await? {
        s.batch(RELEASE).await?;
        return Ok(SendOutcome::NoConsent);
    }
    for q in &m.quotas {
        if !s.take_unit(&q.key, q.window_start, q.limit).await? {
            s.batch(ROLLBACK).await?;
            return Ok(SendOutcome::Capped(q.rule));
        }
    }
    s.batch(RELEASE).await?;
    let (status, release_at) = m.hold.unwrap_or((MessageStatus::Accepted, m.created_at));
    let (key, hash) = match &m.idempotency {
        Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
        None => (None, None),
    };
    let row = MessageRow {
        m,
        user_id: &user_id,
        status,
        release_at,
        rule: rule_name(m.consume),
        rows: S::json(&m.rows)?,
        data: S::json(&m.data)?,
        key,
        hash,
    };
    let id = s.insert_message(&row).await?;
    let (appid, tmpl) = (m.appid.as_str(), m.template_id.as_str());
    s.bump(appid, tmpl, m.created_at, "sent", 0.0).await?;
    if m.consume == ConsumeRule::OneTime {
        s.bump(appid, tmpl, m.created_at, "grant_consumed", 0.0)
            .await?;
    }
    let msgid = crate::rows::msgid(id, S::corrupt)?;
    if m.hold.is_some() {
        let detail = format!("until {release_at}");
        s.event(id, m.created_at, status.as_str(), None, Some(&detail))
            .await?;
        return Ok(SendOutcome::Accepted { msgid, entry: None });
    }
    let seq = s
        .push_entry(&user_id, EntryKind::Message, id, m.created_at)
        .await?;
    let message = Message {
        msgid,
        appid: m.appid.clone(),
        openid: m.openid.clone(),
        user_id: UserId::from_trusted(user_id),
        template_id: m.template_id.clone(),
        title: m.title.clone(),
        page: m.page.as_ref().map(|p| p.as_str().to_owned()),
        rows: m.rows.clone(),
        lang: m.lang,
        miniprogram_state: m.miniprogram_state,
        status,
        urgent: m.urgent,
        release_at,
        expires_at: m.expires_at,
        created_at: m.created_at,
        delivered_at: None,
    };
    Ok(SendOutcome::Accepted {
        msgid,
        entry: Some(InboxEntry {
            user_id: message.user_id.clone(),
            seq,
            kind: EntryKind::Message,
            message,
        }),
    })
}

/// Counts a metric of one message (its app and template).
pub(crate) async fn bump_message<S: Steps>(
    s: &mut S,
    msgid: i64,
    now: Millis,
    metric: &str,
    value: f64,
) -> Result<(), S::Error> {
    let (appid, _, tmpl) = s.message_keys(msgid).await?;
    s.bump(&appid, &tmpl, now, metric, value).await
}

/// Queues the `subscribe_msg_sent_event` of a message.
pub(crate) async fn sent_event<S: Steps>(
    s: &mut S,
    msgid: i64,
    code: i64,
    status: &str,
    now: Millis,
) -> Result<(), S::Error> {
    let (appid, openid, tmpl) = s.message_keys(msgid).await?;
    let ev = PushEvent::Sent {
        template_id: tmpl,
        msgid: msgid as u64,
        error_code: code,
        error_status: status.to_owned(),
    };
    s.enqueue(&appid, &openid, &ev, now).await
}

pub(crate) async fn extension_event<S: Steps>(
    s: &mut S,
    msgid: i64,
    name: &str,
    extra: &[(&str, String)],
    now: Millis,
) -> Result<(), S::Error> {
    let (appid, openid, tmpl) = s.message_keys(msgid).await?;
    let ev = PushEvent::extension(name, &tmpl, msgid as u64, extra);
    s.enqueue(&appid, &openid, &ev, now).await
}

/// What follows a pending message's move to `status` (TTL or cancel/recall): its
/// one-time grant back, the timeline line, the `subscribe_msg_sent_event` with
/// `code`/`why`, and the counters. Returns whether a grant was refunded.
pub(crate) async fn after_pending<S: Steps>(
    s: &mut S,
    msgid: i64,
    now: Millis,
    status: &str,
    code: i64,
    why: &str,
) -> Result<bool, S::Error> {
    let refunded = s.refund(msgid).await?;
    let detail = if refunded {
        "grant refunded"
    } else {
        "no grant to refund"
    };
    s.event(msgid, now, status, None, Some(detail)).await?;
    sent_event(s, msgid, code, why, now).await?;
    bump_message(s, msgid, now, status, 0.0).await?;
    if refunded {
        bump_message(s, msgid, now, "grant_refunded", 0.0).await?;
    }
    Ok(refunded)
}

async fn tombstone<S: Steps>(
    s: &mut S,
    user_id: &str,
    msgid: i64,
    now: Millis,
) -> Result<InboxEntry, S::Error> {
    let seq = s.push_entry(user_id, EntryKind::Recall, msgid, now).await?;
    Ok(InboxEntry {
        user_id: UserId::from_trusted(user_id.to_owned()),
        seq,
        kind: EntryKind::Recall,
        message: s.load_message(msgid).await?,
    })
}

/// Cancel (before delivery) or recall (also after delivery).
pub(crate) async fn stop<S: Steps>(
    s: &mut S,
    appid: &str,
    msgid: i64,
    recall: bool,
    now: Millis,
) -> Result<StopOutcome, S::Error> {
    let Some((status, user_id)) = s.stop_target(appid, msgid).await? else {
        return Ok(StopOutcome::NotFound);
    };
    let status = crate::rows::status(&status, S::corrupt)?;
    if status.is_pending() {
        let (code, why) = if recall {
            (SENT_RECALLED, "recalled")
        } else {
            (SENT_CANCELLED, "cancelled")
        };
        s.set_final(msgid, "cancelled", now).await?;
        let refunded = after_pending(s, msgid, now, "cancelled", code, why).await?;
        // An accepted card may already sit on a device without an ack: take it back.
        let tombstone = if status == MessageStatus::Accepted {
            Some(tombstone(s, &user_id, msgid, now).await?)
        } else {
            None
        };
        return Ok(StopOutcome::Cancelled {
            refunded,
            tombstone,
        });
    }
    if status == MessageStatus::Delivered && recall {
        s.set_final(msgid, "recalled", now).await?;
        s.event(msgid, now, "recalled", None, None).await?;
        extension_event(s, msgid, "tuisong_msg_recalled", &[], now).await?;
        bump_message(s, msgid, now, "recalled", 0.0).await?;
        return Ok(StopOutcome::Recalled {
            tombstone: tombstone(s, &user_id, msgid, now).await?,
        });
    }
    Ok(StopOutcome::TooLate(status))
}

/// A device acknowledged a message of its user: true when this made it `delivered`;
/// None, changing nothing, when the message is not the user's (or unknown).
pub(crate) async fn ack<S: Steps>(
    s: &mut S,
    user_id: &str,
    msgid: i64,
    device: &str,
    now: Millis,
) -> Result<Option<bool>, S::Error> {
    if !s.owns(user_id, true, msgid).await? {
        return Ok(None);
    }
    if s.record_delivery(msgid, device, now).await? {
        s.event(msgid, now, "delivered", Some(device), None).await?;
    }
    // Conditional: of two devices acking at once, on any nodes, one wins.
    let first = s.mark_delivered(msgid, now).await?;
    if first {
        bump_message(s, msgid, now, "delivered", 0.0).await?;
        sent_event(s, msgid, SENT_SUCCESS, "success", now).await?;
        let extra = [("Device", device.to_owned())];
        extension_event(s, msgid, "tuisong_msg_delivered", &extra, now).await?;
    }
    Ok(Some(first))
}

/// The user tapped a card: the timeline, the push event, the counter, `opened_at`.
pub(crate) async fn open<S: Steps>(
    s: &mut S,
    user_id: &str,
    msgid: i64,
    device: &str,
    now: Millis,
) -> Result<Option<Message>, S::Error> {
    let m = s.user_message(user_id, msgid).await?;
    if m.is_some() {
        s.event(msgid, now, "opened", Some(device), None).await?;
        let extra = [("Device", device.to_owned())];
        extension_event(s, msgid, "tuisong_msg_opened", &extra, now).await?;
        bump_message(s, msgid, now, "opened", 0.0).await?;
        s.mark_opened(msgid, now).await?;
    }
    Ok(m)
}

/// An event on the timeline of one of the app's messages, counted, with its push.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn add_event<S: Steps>(
    s: &mut S,
    appid: &str,
    msgid: i64,
    name: &str,
    detail: Option<&str>,
    value: Option<f64>,
    push: Option<&PushEvent>,
    now: Millis,
) -> Result<bool, S::Error> {
    if !s.owns(appid, false, msgid).await? {
        return Ok(false);
    }
    s.event(msgid, now, name, None, detail).await?;
    bump_message(s, msgid, now, name, value.unwrap_or(0.0)).await?;
    if let Some(ev) = push {
        let (appid, openid, _) = s.message_keys(msgid).await?;
        s.enqueue(&appid, &openid, ev, now).await?;
    }
    Ok(true)
}

/// The timeline line and inbox entry of a message just released.
pub(crate) async fn released<S: Steps>(
    s: &mut S,
    msgid: i64,
    user_id: String,
    now: Millis,
) -> Result<InboxEntry, S::Error> {
    s.event(msgid, now, "released", None, None).await?;
    let seq = s
        .push_entry(&user_id, EntryKind::Message, msgid, now)
        .await?;
    Ok(InboxEntry {
        user_id: UserId::from_trusted(user_id),
        seq,
        kind: EntryKind::Message,
        message: s.load_message(msgid).await?,
    })
}

/// The effects of a prompt that change a consent row.
pub(crate) fn effective(effects: &[PromptEffect]) -> Vec<&PromptEffect> {
    effects
        .iter()
        .filter(|e| e.grant || e.set_status.is_some() || e.set_kept.is_some())
        .collect()
}

/// The counters a prompt's effects add, and its popup event if a prompt was shown.
pub(crate) async fn prompt_counts<S: Steps>(
    s: &mut S,
    appid: &str,
    openid: &str,
    effects: &[&PromptEffect],
    now: Millis,
) -> Result<(), S::Error> {
    use tuisong_core::consent::Decision;
    for e in effects {
        let t = e.template_id.as_str();
        if e.shown {
            s.bump(appid, t, now, "prompt_shown", 0.0).await?;
            let m = if e.set_status == Some(Decision::Accept) {
                "prompt_accepted"
            } else {
                "prompt_rejected"
            };
            s.bump(appid, t, now, m, 0.0).await?;
        }
        if e.grant {
            s.bump(appid, t, now, "grant_given", 0.0).await?;
        }
    }
    let shown: Vec<PromptItem> = effects
        .iter()
        .filter(|e| e.shown)
        .map(|e| PromptItem {
            template_id: e.template_id.to_string(),
            status: e.result.as_str().to_owned(),
        })
        .collect();
    if !shown.is_empty() {
        let ev = PushEvent::Popup { items: shown };
        s.enqueue(appid, openid, &ev, now).await?;
    }
    Ok(())
}

/// The change event a template switched off queues (only rejections are pushed, as
/// WeChat does).
pub(crate) fn switched_off(tmpl: &str) -> PushEvent {
    PushEvent::Change {
        items: vec![PromptItem {
            template_id: tmpl.to_owned(),
            status: "reject".to_owned(),
        }],
    }
}

/// A msgid from the API as the stores keep it; None if it cannot be one.
pub(crate) fn stored_id(msgid: MsgId) -> Option<i64> {
    i64::try_from(msgid.0).ok()
}
