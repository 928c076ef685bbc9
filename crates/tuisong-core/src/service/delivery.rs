//! Delivery to devices: a user's inbox after a cursor, acks and opens. Every call is about
//! the user's own inbox: a msgid that is not the user's is answered as an unknown one
//! (`NotFound`), by the store, which changes nothing for it.

use super::Platform;
use crate::error::{Error, Result};
use crate::ids::{MsgId, UserId};
use crate::store::{InboxEntry, Message, User};

impl Platform {
    /// The highest cursor (and msgid) a device may give: the store keeps seqs and msgids
    /// as signed 64-bit numbers, so anything above can name nothing, and would wrap.
    pub const MAX_CURSOR: u64 = i64::MAX as u64;

    /// The user's inbox entries after `after_seq`, at most `limit` (1–500). A cursor above
    /// [`Platform::MAX_CURSOR`] is refused (`Invalid`), never wrapped.
    pub async fn inbox(
        &self,
        user: &User,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        if after_seq > Self::MAX_CURSOR {
            return Err(Error::Invalid(format!(
                "cursor must be at most {}",
                Self::MAX_CURSOR
            )));
        }
        Ok(self
            .store
            .inbox(&user.user_id, after_seq, limit.clamp(1, 500))
            .await?)
    }

    /// A device acknowledged a message; true when it was the first delivery. A message
    /// that is not the user's is `NotFound`, and stays as it was.
    #[tracing::instrument(level = "debug", name = "ack", skip_all, fields(%user, msgid))]
    pub async fn ack(&self, user: &UserId, msgid: u64, device: &str) -> Result<bool> {
        if msgid > Self::MAX_CURSOR {
            return Err(Error::NotFound("message"));
        }
        self.store
            .ack(user, MsgId(msgid), device, self.now())
            .await?
            .ok_or(Error::NotFound("message"))
    }

    /// The user tapped a card: counts the click, returns the message (for its page). A
    /// message that is not the user's is `NotFound`, and nothing is counted.
    #[tracing::instrument(level = "debug", name = "open", skip_all, fields(%user, msgid))]
    pub async fn open(&self, user: &UserId, msgid: u64, device: &str) -> Result<Message> {
        if msgid > Self::MAX_CURSOR {
            return Err(Error::NotFound("message"));
        }
        self.store
            .open(user, MsgId(msgid), device, self.now())
            .await?
            .ok_or(Error::NotFound("message"))
    }
}
