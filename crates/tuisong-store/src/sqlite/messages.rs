//! Messages on the embedded store: the send (one writer job running the shared
//! [`flow::send`]), lookups, the timeline, cancel/recall, events and listing.

use super::SqliteStore;
use super::steps::Sq;
use crate::flow::{self, ready};
use crate::rows::{self, message_cols};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tuisong_core::clock::Millis;
use tuisong_core::ids::{AppId, MsgId};
use tuisong_core::push::PushEvent;
use tuisong_core::store::{
    Message, MessageFilter, MessageStatus, MessageStore, NewMessage, SendOutcome, StopOutcome,
    StoreError, TimelineEvent,
};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn send(&self, msg: &NewMessage) -> Result<SendOutcome, StoreError> {
        let m = msg.clone();
        self.write(move |c| ready(flow::send(&mut Sq(c), &m))).await
    }

    async fn get_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
    ) -> Result<Option<Message>, StoreError> {
        let appid = appid.clone();
        let Some(id) = flow::stored_id(msgid) else {
            return Ok(None);
        };
        self.read(move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m WHERE m.msgid = ?1 AND m.appid = ?2"
            ))?
            .query_row(params![id, appid.as_str()], |r| rows::message(r))
            .optional()
        })
        .await
    }

    async fn timeline(&self, msgid: MsgId) -> Result<Vec<TimelineEvent>, StoreError> {
        let id = msgid.0 as i64;
        self.read(move |c| {
            c.prepare_cached(
                "SELECT at, event, device, detail FROM message_events WHERE msgid = ?1 ORDER BY id",
            )?
            .query_map([id], |r| rows::timeline_event(r))?
            .collect()
        })
        .await
    }

    async fn stop_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
        recall: bool,
        now: Millis,
    ) -> Result<StopOutcome, StoreError> {
        let appid = appid.clone();
        let Some(id) = flow::stored_id(msgid) else {
            return Ok(StopOutcome::NotFound);
        };
        self.write(move |c| ready(flow::stop(&mut Sq(c), appid.as_str(), id, recall, now)))
            .await
    }

    async fn add_event(
        &self,
        appid: &AppId,
        msgid: MsgId,
        name: &str,
        detail: Option<&str>,
        value: Option<f64>,
        push: Option<&PushEvent>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (appid, name, detail) = (appid.clone(), name.to_owned(), detail.map(str::to_owned));
        let push = push.cloned();
        let Some(id) = flow::stored_id(msgid) else {
            return Ok(false);
        };
        self.write(move |c| {
            ready(flow::add_event(
                &mut Sq(c),
                appid.as_str(),
                id,
                &name,
                detail.as_deref(),
                value,
                push.as_ref(),
                now,
            ))
        })
        .await
    }

    async fn list_messages(
        &self,
        appid: &AppId,
        f: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError> {
        let appid = appid.clone();
        let f = f.clone();
        self.read(move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m
                 WHERE m.appid = ?1 AND (?2 IS NULL OR m.status = ?2) AND (?3 IS NULL OR m.tmpl_id = ?3)
                   AND (?4 IS NULL OR m.openid = ?4) AND (?5 IS NULL OR m.msgid < ?5)
                 ORDER BY m.msgid DESC LIMIT ?6"
            ))?
            .query_map(
                params![
                    appid.as_str(),
                    f.status.map(MessageStatus::as_str),
                    f.template_id,
                    f.openid,
                    f.before.map(|b| b as i64),
                    f.limit.clamp(1, 500) as i64
                ],
                |r| rows::message(r),
            )?
            .collect()
        })
        .await
    }
}
