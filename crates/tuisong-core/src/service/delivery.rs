//! Delivery to devices: a user's inbox after a cursor, acks and opens.

use super::Platform;
use crate::error::{Error, Result};
use crate::ids::{MsgId, UserId};
use crate::store::{InboxEntry, Message, User};

impl Platform {
    pub async fn inbox(
        &self,
        user: &User,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        Ok(self
            .store
            .inbox(&user.user_id, after_seq, limit.clamp(1, 500))
            .await?)
    }

    /// A device acknowledged a message; true when it was the first delivery.
    pub async fn ack(&self, user: &UserId, msgid: u64, device: &str) -> Result<bool> {
        Ok(self
            .store
            .ack(user, MsgId(msgid), device, self.now())
            .await?)
    }

    /// The user tapped a card: counts the click, returns the message (for its page).
    pub async fn open(&self, user: &UserId, msgid: u64, device: &str) -> Result<Message> {
        self.store
            .open(user, MsgId(msgid), device, self.now())
            .await?
            .ok_or(Error::NotFound("message"))
    }
}
