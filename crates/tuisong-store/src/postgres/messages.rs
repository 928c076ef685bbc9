//! Messages on PostgreSQL: the send (one transaction running the shared [`flow::send`]),
//! lookups, the timeline, cancel/recall, events and listing.

use super::PgStore;
use super::error::{collect, one};
use super::tx::in_tx;
use crate::flow;
use crate::rows::{self, message_cols};
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::ids::{AppId, MsgId};
use tuisong_core::push::PushEvent;
use tuisong_core::store::{
    Message, MessageFilter, MessageStatus, MessageStore, NewMessage, SendOutcome, StopOutcome,
    StoreError, TimelineEvent,
};

#[async_trait]
impl MessageStore for PgStore {
    async fn send(&self, msg: &NewMessage) -> Result<SendOutcome, StoreError> {
        // With an idempotency key a re-run after a lost COMMIT finds the first message
        // and answers it as a replay, so it may run again whatever happened (see in_tx).
        let keyed = msg.idempotency.is_some();
        in_tx!(self, rerun_after_commit = keyed, |tx| {
            flow::send(&mut tx, msg).await?
        })
    }

    async fn get_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
    ) -> Result<Option<Message>, StoreError> {
        let Some(id) = flow::stored_id(msgid) else {
            return Ok(None);
        };
        let sql = concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages m WHERE m.msgid = $1 AND m.appid = $2"
        );
        one(
            self.read_opt(sql, &[&id, &appid.as_str()]).await?,
            rows::message,
        )
    }

    async fn timeline(&self, msgid: MsgId) -> Result<Vec<TimelineEvent>, StoreError> {
        let id = msgid.0 as i64;
        let rows = self
            .read_all(
                "SELECT at, event, device, detail FROM message_events WHERE msgid = $1 ORDER BY id",
                &[&id],
            )
            .await?;
        collect(rows, rows::timeline_event)
    }

    async fn stop_message(
        &self,
        appid: &AppId,
        msgid: MsgId,
        recall: bool,
        now: Millis,
    ) -> Result<StopOutcome, StoreError> {
        let Some(id) = flow::stored_id(msgid) else {
            return Ok(StopOutcome::NotFound);
        };
        in_tx!(self, |tx| flow::stop(
            &mut tx,
            appid.as_str(),
            id,
            recall,
            now
        )
        .await?)
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
        let Some(id) = flow::stored_id(msgid) else {
            return Ok(false);
        };
        let appid = appid.as_str();
        in_tx!(self, |tx| {
            flow::add_event(&mut tx, appid, id, name, detail, value, push, now).await?
        })
    }

    async fn list_messages(
        &self,
        appid: &AppId,
        f: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = self
            .read_all(
                concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m
                     WHERE m.appid = $1 AND ($2::TEXT IS NULL OR m.status = $2)
                       AND ($3::TEXT IS NULL OR m.tmpl_id = $3)
                       AND ($4::TEXT IS NULL OR m.openid = $4)
                       AND ($5::BIGINT IS NULL OR m.msgid < $5)
                     ORDER BY m.msgid DESC LIMIT $6"
                ),
                &[
                    &appid.as_str(),
                    &f.status.map(MessageStatus::as_str),
                    &f.template_id,
                    &f.openid,
                    &f.before.map(|b| b as i64),
                    &(f.limit.clamp(1, 500) as i64),
                ],
            )
            .await?;
        collect(rows, rows::message)
    }
}
