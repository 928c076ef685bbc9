//! The device protocol's WebSocket frames (docs/PROTOCOL.md, "Receiving: the WebSocket"):
//! what the server sends (`ServerFrame`) and what a device sends (`ClientFrame`), one
//! JSON object per text frame, tagged by `type`. The server gateway, `tuisong device` and
//! the bench all read and write these same types.
//!
//! The frames hold only strings and numbers: turning a core `InboxEntry` into a frame
//! decides whether a card is gone (cancelled, expired), which is a delivery rule, so that
//! conversion stays in the server's gateway and this module stays a wire format.
//!
//! Deserializing is lenient where a device must be: fields a device does not need may be
//! missing, and an unknown `type` from a newer server becomes `ServerFrame::Unknown`.

use serde::{Deserialize, Serialize};

/// A card row as the device shows it: a keyword's name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRow {
    pub name: String,
    pub value: String,
}

/// A notification card (the `message` frame). Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub seq: u64,
    pub msgid: u64,
    #[serde(default)]
    pub appid: String,
    #[serde(default)]
    pub template_id: String,
    pub title: String,
    /// The template's keyword rows, in template order.
    #[serde(default)]
    pub rows: Vec<CardRow>,
    /// The page "进入小程序查看" opens, or none.
    #[serde(default)]
    pub page: Option<String>,
    #[serde(default)]
    pub urgent: bool,
    #[serde(default)]
    pub sent_at: i64,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to `hello`: who the device is and the cursor it resumes from.
    Welcome {
        user_id: String,
        cursor: u64,
    },
    Message(Card),
    /// The card with this msgid was recalled ("此消息已撤回").
    Recall {
        seq: u64,
        msgid: u64,
    },
    /// The answer to `open`: the mini program and page to open.
    Opened {
        msgid: u64,
        #[serde(default)]
        appid: String,
        #[serde(default)]
        page: Option<String>,
    },
    Ping,
    /// A frame the server could not use; the session stays open.
    Error {
        message: String,
    },
    /// A `type` this build does not know (a newer server); devices ignore it. The server
    /// never sends it.
    #[serde(other)]
    Unknown,
}

/// The three fields a high-rate client reads of a server frame — its `type`, `msgid` and
/// `page` — borrowed from the text. [`ServerFrame`] is an internally tagged enum, which
/// serde buffers and copies whole; a load generator that shares the server's cores pays
/// for that in the server's measured throughput (the deliver bench lost 8–17 %).
#[derive(Debug, Deserialize)]
pub struct FrameHead<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default)]
    pub msgid: u64,
    #[serde(default, borrow)]
    pub page: Option<std::borrow::Cow<'a, str>>,
}

/// Frames a device sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame: the last seq the device has seen, and its name on timelines.
    Hello {
        #[serde(default)]
        cursor: u64,
        #[serde(default)]
        device: Option<String>,
    },
    /// The card is on screen.
    Ack {
        msgid: u64,
    },
    /// The user tapped the card.
    Open {
        msgid: u64,
    },
    /// "Stop receiving this": turns the card's template off for this user.
    Unsubscribe {
        msgid: u64,
    },
    Pong,
    Ping,
}

/// JSON text of a frame. The frames are plain strings, numbers and options, which
/// always serialize; the fallback is never expected to be used.
fn text_of(frame: &impl Serialize) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| r#"{"type":"error"}"#.to_owned())
}

impl ServerFrame {
    /// The frame as the JSON text of one WebSocket message.
    pub fn to_text(&self) -> String {
        text_of(self)
    }

    /// An `error` frame.
    pub fn error(message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error {
            message: message.into(),
        }
    }
}

impl ClientFrame {
    /// The frame as the JSON text of one WebSocket message.
    pub fn to_text(&self) -> String {
        text_of(self)
    }

    /// `hello` from `cursor` as `device`.
    pub fn hello(cursor: u64, device: &str) -> ClientFrame {
        ClientFrame::Hello {
            cursor,
            device: Some(device.to_owned()),
        }
    }
}

/// A device name as timelines show it: control characters dropped, at most 64
/// characters; None when nothing is left.
pub fn clean_device_name(raw: &str) -> Option<String> {
    let name: String = raw.chars().filter(|c| !c.is_control()).take(64).collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str, frame: ServerFrame) {
        assert_eq!(frame.to_text(), text);
        assert_eq!(
            serde_json::from_str::<ServerFrame>(text).expect("parses"),
            frame
        );
    }

    fn client(text: &str, frame: ClientFrame) {
        assert_eq!(frame.to_text(), text);
        assert_eq!(
            serde_json::from_str::<ClientFrame>(text).expect("parses"),
            frame
        );
    }

    #[test]
    fn the_frame_head_reads_type_msgid_and_page_of_any_server_frame() {
        let text = concat!(
            r#"{"type":"message","seq":7,"msgid":12,"appid":"wx1","template_id":"t1","#,
            r#""title":"t","rows":[],"page":"pages/a?x=1","urgent":false,"#,
            r#""sent_at":1,"expires_at":null}"#
        );
        let h: FrameHead = serde_json::from_str(text).expect("head");
        assert_eq!(
            (h.kind, h.msgid, h.page.as_deref()),
            ("message", 12, Some("pages/a?x=1"))
        );
        let h: FrameHead = serde_json::from_str(r#"{"type":"ping"}"#).expect("ping");
        assert_eq!((h.kind, h.msgid, h.page), ("ping", 0, None));
    }

    #[test]
    fn server_frames_are_the_documented_json() {
        server(
            r#"{"type":"welcome","user_id":"u1","cursor":0}"#,
            ServerFrame::Welcome {
                user_id: "u1".into(),
                cursor: 0,
            },
        );
        server(
            concat!(
                r#"{"type":"message","seq":7,"msgid":12,"appid":"wx1","template_id":"t1","#,
                r#""title":"订单发货通知","rows":[{"name":"订单编号","value":"DD202611240042"},"#,
                r#"{"name":"商品名称","value":"手机壳"}],"page":"pages/order/detail?id=42","#,
                r#""urgent":false,"sent_at":1795512345000,"expires_at":null}"#
            ),
            ServerFrame::Message(Card {
                seq: 7,
                msgid: 12,
                appid: "wx1".into(),
                template_id: "t1".into(),
                title: "订单发货通知".into(),
                rows: vec![
                    CardRow {
                        name: "订单编号".into(),
                        value: "DD202611240042".into(),
                    },
                    CardRow {
                        name: "商品名称".into(),
                        value: "手机壳".into(),
                    },
                ],
                page: Some("pages/order/detail?id=42".into()),
                urgent: false,
                sent_at: 1_795_512_345_000,
                expires_at: None,
            }),
        );
        server(
            r#"{"type":"recall","seq":8,"msgid":12}"#,
            ServerFrame::Recall { seq: 8, msgid: 12 },
        );
        server(
            r#"{"type":"opened","msgid":12,"appid":"wx1","page":"pages/order/detail?id=42"}"#,
            ServerFrame::Opened {
                msgid: 12,
                appid: "wx1".into(),
                page: Some("pages/order/detail?id=42".into()),
            },
        );
        server(
            r#"{"type":"opened","msgid":12,"appid":"wx1","page":null}"#,
            ServerFrame::Opened {
                msgid: 12,
                appid: "wx1".into(),
                page: None,
            },
        );
        server(r#"{"type":"ping"}"#, ServerFrame::Ping);
        server(
            r#"{"type":"error","message":"no message 12"}"#,
            ServerFrame::error("no message 12"),
        );
    }

    #[test]
    fn client_frames_are_the_documented_json() {
        client(
            r#"{"type":"hello","cursor":3,"device":"phone-1"}"#,
            ClientFrame::hello(3, "phone-1"),
        );
        client(
            r#"{"type":"ack","msgid":12}"#,
            ClientFrame::Ack { msgid: 12 },
        );
        client(
            r#"{"type":"open","msgid":12}"#,
            ClientFrame::Open { msgid: 12 },
        );
        client(
            r#"{"type":"unsubscribe","msgid":12}"#,
            ClientFrame::Unsubscribe { msgid: 12 },
        );
        client(r#"{"type":"pong"}"#, ClientFrame::Pong);
        client(r#"{"type":"ping"}"#, ClientFrame::Ping);
    }

    #[test]
    fn hello_fields_default_and_unknown_server_frames_are_tolerated() {
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"hello"}"#).expect("parses"),
            ClientFrame::Hello {
                cursor: 0,
                device: None
            }
        );
        assert_eq!(
            serde_json::from_str::<ServerFrame>(r#"{"type":"future","x":1}"#).expect("parses"),
            ServerFrame::Unknown
        );
        // A device needs only seq, msgid and title of a card.
        let f: ServerFrame =
            serde_json::from_str(r#"{"type":"message","seq":1,"msgid":2,"title":"t"}"#)
                .expect("parses");
        assert!(matches!(f, ServerFrame::Message(Card { msgid: 2, .. })));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
    }

    #[test]
    fn device_names_are_cleaned_and_capped() {
        assert_eq!(clean_device_name("phone\n-1").as_deref(), Some("phone-1"));
        assert_eq!(clean_device_name("\u{1b}\t"), None);
        assert_eq!(
            clean_device_name(&"x".repeat(100)).map(|s| s.len()),
            Some(64)
        );
    }
}
