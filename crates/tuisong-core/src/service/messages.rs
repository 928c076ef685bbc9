//! A message after it is stored: reading it and its timeline, cancel and recall,
//! conversions, the app's message list, and the time-driven work (TTL expiry, release of
//! scheduled and held messages).

use super::Platform;
use crate::error::{Error, Result};
use crate::ids::{AppId, MsgId};
use crate::push::PushEvent;
use crate::store::{Message, MessageFilter, StopOutcome, TimelineEvent};

impl Platform {
    pub async fn message(&self, appid: &AppId, msgid: u64) -> Result<Message> {
        self.store
            .get_message(appid, MsgId(msgid))
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// A message and its timeline: `accepted` from the message itself, then every
    /// recorded event (held, scheduled, released, delivered per device, opened,
    /// converted, recalled, expired, cancelled) in the order they happened.
    pub async fn message_timeline(
        &self,
        appid: &AppId,
        msgid: u64,
    ) -> Result<(Message, Vec<TimelineEvent>)> {
        let m = self.message(appid, msgid).await?;
        let mut events = vec![TimelineEvent {
            at: m.created_at,
            event: "accepted".into(),
            device: None,
            detail: m.urgent.then(|| "urgent".to_owned()),
        }];
        events.extend(self.store.timeline(m.msgid).await?);
        Ok((m, events))
    }

    /// Cancel (before delivery) or recall (before or after). Pending messages are
    /// cancelled and refunded; delivered ones get a tombstone on every device.
    #[tracing::instrument(level = "debug", name = "stop_message", skip_all, fields(%appid, msgid, recall))]
    pub async fn stop_message(
        &self,
        appid: &AppId,
        msgid: u64,
        recall: bool,
    ) -> Result<&'static str> {
        match self
            .store
            .stop_message(appid, MsgId(msgid), recall, self.now())
            .await?
        {
            StopOutcome::Cancelled { tombstone, .. } => {
                if let Some(t) = tombstone {
                    self.publish(&t);
                }
                Ok("cancelled")
            }
            StopOutcome::Recalled { tombstone } => {
                self.publish(&tombstone);
                Ok("recalled")
            }
            StopOutcome::TooLate(s) => Err(Error::TooLate(s.as_str())),
            StopOutcome::NotFound => Err(Error::NotFound("message")),
        }
    }

    /// The app reports a conversion that came from one of its messages.
    #[tracing::instrument(level = "debug", name = "conversion", skip_all, fields(%appid, msgid))]
    pub async fn conversion(
        &self,
        appid: &AppId,
        msgid: u64,
        event: &str,
        value: Option<f64>,
    ) -> Result<()> {
        let event = event.trim();
        if event.is_empty() || event.chars().count() > 64 || event.chars().any(char::is_control) {
            return Err(Error::Invalid("event must be 1 to 64 characters".into()));
        }
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(Error::Invalid("value must be a finite number".into()));
        }
        let detail = serde_json::json!({"event": event, "value": value}).to_string();
        let m = self.message(appid, msgid).await?;
        let mut extra = vec![("ConversionEvent", event.to_owned())];
        if let Some(v) = value {
            extra.push(("ConversionValue", v.to_string()));
        }
        let push = PushEvent::extension(
            "tuisong_msg_converted",
            m.template_id.as_str(),
            msgid,
            &extra,
        );
        if self
            .store
            .add_event(
                appid,
                MsgId(msgid),
                "converted",
                Some(&detail),
                value,
                Some(&push),
                self.now(),
            )
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound("message"))
        }
    }

    pub async fn list_messages(
        &self,
        appid: &AppId,
        filter: &MessageFilter,
    ) -> Result<Vec<Message>> {
        Ok(self.store.list_messages(appid, filter).await?)
    }

    /// One pass of the time-driven work: expire what is past its TTL, then release what
    /// is due. Returns how many of each.
    pub async fn run_due(&self) -> Result<(usize, usize)> {
        let now = self.now();
        let mut expired = 0;
        loop {
            let n = self.store.expire_due(now, 500).await?.len();
            expired += n;
            if n < 500 {
                break;
            }
        }
        let mut released = 0;
        loop {
            let entries = self.store.release_due(now, 500).await?;
            for e in &entries {
                self.publish(e);
            }
            released += entries.len();
            if entries.len() < 500 {
                break;
            }
        }
        Ok((expired, released))
    }
}
