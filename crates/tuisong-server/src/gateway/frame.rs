//! Core's inbox entries as device frames (`tuisong_wire::device`). Here, not in the wire
//! crate, because it decides which entries are gone (cancelled, expired) and produce no
//! frame; the HTTP inbox (`GET /client/v1/inbox`) uses it too.

use tuisong_core::store::{EntryKind, InboxEntry};
use tuisong_core::template::Row;
use tuisong_wire::device::{Card, CardRow, ServerFrame};

fn rows(rows: &[Row]) -> Vec<CardRow> {
    rows.iter()
        .map(|r| CardRow {
            name: r.name.clone(),
            value: r.value.clone(),
        })
        .collect()
}

/// The frame an inbox entry becomes; None for a card that is gone (cancelled, expired,
/// recalled before this device saw it — its tombstone follows).
pub fn entry_frame(e: &InboxEntry, now: i64) -> Option<ServerFrame> {
    let m = &e.message;
    match e.kind {
        EntryKind::Recall => Some(ServerFrame::Recall {
            seq: e.seq,
            msgid: m.msgid.0,
        }),
        EntryKind::Message => {
            if m.status.is_gone() || m.expires_at.is_some_and(|t| t <= now) {
                return None;
            }
            Some(ServerFrame::Message(Card {
                seq: e.seq,
                msgid: m.msgid.0,
                appid: m.appid.to_string(),
                template_id: m.template_id.to_string(),
                title: m.title.clone(),
                rows: rows(&m.rows),
                page: m.page.clone(),
                urgent: m.urgent,
                sent_at: m.release_at.max(m.created_at),
                expires_at: m.expires_at,
            }))
        }
    }
}
