//! What the device remembers across connections and how it answers each server frame:
//! the cursor (the last seq seen), the msgids on screen (a card shown once however often
//! it arrives) and the recalled ones. Pure: no socket, no terminal.

use super::render::render_card;
use std::collections::HashSet;
use tuisong_wire::device::{ClientFrame, ServerFrame};

/// What handling one frame produced.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Effects {
    /// For stdout.
    pub(super) show: Option<String>,
    /// For stderr.
    pub(super) note: Option<String>,
    pub(super) reply: Option<String>,
    /// The server accepted the hello.
    pub(super) welcomed: bool,
}

/// What the device remembers across connections: the cursor and what is on screen.
pub(super) struct Screen {
    pub(super) cursor: u64,
    shown: HashSet<u64>,
    recalled: HashSet<u64>,
    utc_offset_min: i64,
}

impl Screen {
    pub(super) fn new(cursor: u64, utc_offset_min: i64) -> Self {
        Self {
            cursor,
            shown: HashSet::new(),
            recalled: HashSet::new(),
            utc_offset_min,
        }
    }

    pub(super) fn hello(&self, device: &str) -> String {
        ClientFrame::hello(self.cursor, device).to_text()
    }

    pub(super) fn on_text(&mut self, text: &str) -> Effects {
        match serde_json::from_str::<ServerFrame>(text) {
            Ok(f) => self.on_frame(f),
            Err(e) => Effects {
                note: Some(format!("ignoring a frame I cannot read ({e}): {text}")),
                ..Effects::default()
            },
        }
    }

    fn on_frame(&mut self, frame: ServerFrame) -> Effects {
        let mut fx = Effects::default();
        match frame {
            ServerFrame::Welcome { user_id, cursor } => {
                fx.note = Some(format!("connected as {user_id}, from seq {cursor}"));
                fx.welcomed = true;
            }
            ServerFrame::Message(card) => {
                self.cursor = self.cursor.max(card.seq);
                // Shown once however often it arrives; acked every time, since an ack
                // the server never got is why it came again.
                if self.shown.insert(card.msgid) && !self.recalled.contains(&card.msgid) {
                    fx.show = Some(render_card(&card, self.utc_offset_min));
                }
                fx.reply = Some(ClientFrame::Ack { msgid: card.msgid }.to_text());
            }
            ServerFrame::Recall { seq, msgid } => {
                self.cursor = self.cursor.max(seq);
                if self.recalled.insert(msgid) {
                    fx.show = Some(format!("msgid {msgid}: 此消息已撤回"));
                }
            }
            ServerFrame::Opened { msgid, page, .. } => {
                fx.show = Some(format!(
                    "msgid {msgid}: opened → {}",
                    page.as_deref().unwrap_or("(home page)")
                ));
            }
            ServerFrame::Ping => fx.reply = Some(ClientFrame::Pong.to_text()),
            ServerFrame::Error { message } => fx.note = Some(format!("server says: {message}")),
            ServerFrame::Unknown => {}
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(msgid: u64, seq: u64) -> String {
        json!({
            "type": "message", "seq": seq, "msgid": msgid, "appid": "wx1", "template_id": "t",
            "title": "订单发货通知",
            "rows": [{"name": "订单编号", "value": "DD202611240042"}, {"name": "商品名称", "value": "手机壳"}],
            "page": "pages/order/detail?id=42", "urgent": false,
            "sent_at": 1_795_509_900_000_i64, "expires_at": null
        })
        .to_string()
    }

    #[test]
    fn a_card_shows_title_aligned_rows_page_and_local_time() {
        let mut s = Screen::new(0, 480);
        let fx = s.on_text(&card(12, 1));
        let shown = fx.show.expect("a card");
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[0].starts_with("┌─ 订单发货通知 ─"), "{shown}");
        assert!(lines[0].ends_with("msgid 12 · 2026-11-24 16:45"), "{shown}");
        assert_eq!(lines[1], "│ 订单编号   DD202611240042");
        assert_eq!(lines[2], "│ 商品名称   手机壳");
        assert_eq!(lines[3], "│ 进入小程序查看 → pages/order/detail?id=42");
        assert!(lines[4].starts_with("└──"));
        assert_eq!(fx.reply.as_deref(), Some(r#"{"type":"ack","msgid":12}"#));
        assert_eq!(s.cursor, 1);
    }

    #[test]
    fn a_card_delivered_twice_is_shown_once_and_acked_twice() {
        let mut s = Screen::new(0, 480);
        assert!(s.on_text(&card(7, 1)).show.is_some());
        let again = s.on_text(&card(7, 1));
        assert_eq!(again.show, None);
        assert!(again.reply.is_some(), "acked again");
    }

    #[test]
    fn a_recall_is_printed_once_and_moves_the_cursor() {
        let mut s = Screen::new(0, 0);
        s.on_text(&card(7, 1));
        let r = json!({"type": "recall", "seq": 2, "msgid": 7}).to_string();
        assert_eq!(s.on_text(&r).show.as_deref(), Some("msgid 7: 此消息已撤回"));
        assert_eq!(s.on_text(&r).show, None);
        assert_eq!(s.cursor, 2);
        assert_eq!(s.hello("d"), r#"{"type":"hello","cursor":2,"device":"d"}"#);
    }

    #[test]
    fn ping_gets_pong_and_unknown_frames_are_ignored() {
        let mut s = Screen::new(0, 0);
        assert_eq!(
            s.on_text(r#"{"type":"ping"}"#).reply.as_deref(),
            Some(r#"{"type":"pong"}"#)
        );
        assert_eq!(s.on_text(r#"{"type":"future"}"#), Effects::default());
    }
}
