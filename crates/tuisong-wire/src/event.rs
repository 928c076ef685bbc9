//! Subscribe events (spec §8) rendered byte-for-byte the way WeChat pushes them, in XML or JSON,
//! plus the safe-mode and compatible-mode push bodies that wrap an `Encrypt` value (§7.3).
//!
//! Owns: field names, field order, the XML/JSON typing rules of §8.4 and CDATA quoting. It does
//! not encrypt or sign (see [`crate::crypto`]) and knows nothing of HTTP.
//!
//! Typing (§8.4): `CreateTime` and `ErrorCode` are JSON integers, `PopupScene` and `MsgID` JSON
//! strings; JSON `List` is an object for one item and an array for several; XML repeats `<List>`
//! inside the `SubscribeMsg*Event` wrapper; XML strings are CDATA, numbers bare.
//!
//! Choices, UNCONFIRMED against real traffic:
//! - `ErrorCode` is a JSON integer although the official example shows `"0"`: silenceper
//!   decodes it into an `int` and fails on a string, WxJava accepts both (§8.4).
//! - `CreateTime` is a JSON integer although the official popup example shows a string; real
//!   traffic has integers (§8.4).
//! - An empty item list renders as an empty wrapper in XML and `"List":[]` in JSON. WeChat never
//!   sends an empty list; an array is what every SDK already iterates.
//! - Compatible mode (明文+密文) appends `Encrypt` after the plaintext fields: the last element
//!   inside `<xml>` (as in public official-account "mixed mode" fixtures) and the last key in
//!   JSON. The JSON variant has never been observed.
//! - Characters XML 1.0 cannot carry at all (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF)
//!   are replaced by U+FFFD in XML output; JSON escapes them and keeps them.
//! - Extension events (ours, e.g. `tuisong_msg_delivered`) are flat: the common fields, then
//!   their own fields in the given order, strings as CDATA/JSON strings and integers bare/JSON
//!   numbers. Their names come from our code, not from users, and must be valid XML element
//!   names that do not repeat a common field; nothing here checks that.

use std::fmt::Write as _;

/// The data format chosen in the push configuration (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Xml,
    Json,
}

/// One event as pushed to a developer server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The mini program's original id, `gh_…`.
    pub to_user_name: String,
    /// The user's openid.
    pub from_user_name: String,
    /// Unix seconds.
    pub create_time: i64,
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// `subscribe_msg_popup_event`, wrapper `SubscribeMsgPopupEvent`.
    Popup(Vec<PopupItem>),
    /// `subscribe_msg_change_event`, wrapper `SubscribeMsgChangeEvent`.
    Change(Vec<ChangeItem>),
    /// `subscribe_msg_sent_event`, wrapper `SubscribeMsgSentEvent`.
    Sent(Vec<SentItem>),
    /// Our own extension events (names we choose, e.g. "tuisong_msg_delivered"); flat string/int fields.
    Extension {
        event: String,
        fields: Vec<(String, ExtValue)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopupItem {
    pub template_id: String,
    /// `accept` or `reject`.
    pub status: String,
    /// 0 = inside a mini program page.
    pub popup_scene: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeItem {
    pub template_id: String,
    /// WeChat only pushes `reject` here (§8.2).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentItem {
    pub template_id: String,
    pub msg_id: u64,
    /// 0 = success.
    pub error_code: i64,
    pub error_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtValue {
    Str(String),
    Int(i64),
}

const POPUP: &str = "subscribe_msg_popup_event";
const CHANGE: &str = "subscribe_msg_change_event";
const SENT: &str = "subscribe_msg_sent_event";

impl Event {
    /// The `Event` field: one of the three WeChat names, or the extension's own name.
    pub fn event_name(&self) -> &str {
        match &self.body {
            EventBody::Popup(_) => POPUP,
            EventBody::Change(_) => CHANGE,
            EventBody::Sent(_) => SENT,
            EventBody::Extension { event, .. } => event,
        }
    }

    /// The plaintext push body, as sent in plaintext mode.
    pub fn render(&self, format: Format) -> String {
        self.to_doc(None).render(format)
    }

    fn to_doc<'a>(&'a self, encrypt: Option<&'a str>) -> Doc<'a> {
        let mut fields = vec![
            ("ToUserName", Scalar::Str(&self.to_user_name)),
            ("FromUserName", Scalar::Str(&self.from_user_name)),
            ("CreateTime", Scalar::Int(self.create_time)),
            ("MsgType", Scalar::Str("event")),
            ("Event", Scalar::Str(self.event_name())),
        ];
        let list = match &self.body {
            EventBody::Popup(items) => Some(List {
                wrapper: "SubscribeMsgPopupEvent",
                items: items
                    .iter()
                    .map(|item| {
                        vec![
                            ("TemplateId", Scalar::Str(&item.template_id)),
                            ("SubscribeStatusString", Scalar::Str(&item.status)),
                            ("PopupScene", Scalar::Digits(item.popup_scene.to_string())),
                        ]
                    })
                    .collect(),
            }),
            EventBody::Change(items) => Some(List {
                wrapper: "SubscribeMsgChangeEvent",
                items: items
                    .iter()
                    .map(|item| {
                        vec![
                            ("TemplateId", Scalar::Str(&item.template_id)),
                            ("SubscribeStatusString", Scalar::Str(&item.status)),
                        ]
                    })
                    .collect(),
            }),
            EventBody::Sent(items) => Some(List {
                wrapper: "SubscribeMsgSentEvent",
                items: items
                    .iter()
                    .map(|item| {
                        vec![
                            ("TemplateId", Scalar::Str(&item.template_id)),
                            ("MsgID", Scalar::Digits(item.msg_id.to_string())),
                            ("ErrorCode", Scalar::Int(item.error_code)),
                            ("ErrorStatus", Scalar::Str(&item.error_status)),
                        ]
                    })
                    .collect(),
            }),
            EventBody::Extension { fields: extra, .. } => {
                fields.extend(extra.iter().map(|(name, value)| {
                    let value = match value {
                        ExtValue::Str(s) => Scalar::Str(s),
                        ExtValue::Int(n) => Scalar::Int(*n),
                    };
                    (name.as_str(), value)
                }));
                None
            }
        };
        let trailer = encrypt.map(|e| ("Encrypt", Scalar::Str(e)));
        Doc {
            fields,
            list,
            trailer,
        }
    }
}

/// Body of a safe-mode push: XML <xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml> or JSON {"ToUserName","Encrypt"}.
pub fn safe_body(format: Format, to_user_name: &str, encrypt: &str) -> String {
    Doc {
        fields: vec![
            ("ToUserName", Scalar::Str(to_user_name)),
            ("Encrypt", Scalar::Str(encrypt)),
        ],
        list: None,
        trailer: None,
    }
    .render(format)
}

/// Body of a compatible-mode push: the plaintext event plus an Encrypt field (XML: extra <Encrypt> element inside <xml>; JSON: extra "Encrypt" key — UNCONFIRMED, document it).
///
/// `Encrypt` comes last in both formats; see the module comment for why and what is unknown.
pub fn compatible_body(format: Format, event: &Event, encrypt: &str) -> String {
    event.to_doc(Some(encrypt)).render(format)
}

/// A field value and how each format types it.
enum Scalar<'a> {
    /// CDATA in XML, string in JSON.
    Str(&'a str),
    /// Bare in XML, number in JSON.
    Int(i64),
    /// A number written bare in XML but as a JSON string (`PopupScene`, `MsgID`).
    Digits(String),
}

type Fields<'a> = Vec<(&'a str, Scalar<'a>)>;

struct List<'a> {
    wrapper: &'static str,
    items: Vec<Fields<'a>>,
}

/// A push body in WeChat's field order: top-level fields, the list, then an optional trailer.
struct Doc<'a> {
    fields: Fields<'a>,
    list: Option<List<'a>>,
    trailer: Option<(&'a str, Scalar<'a>)>,
}

impl Doc<'_> {
    fn render(&self, format: Format) -> String {
        match format {
            Format::Xml => self.render_xml(),
            Format::Json => self.render_json(),
        }
    }

    fn render_xml(&self) -> String {
        let mut out = String::from("<xml>");
        xml_fields(&mut out, &self.fields);
        if let Some(list) = &self.list {
            open_tag(&mut out, list.wrapper);
            for item in &list.items {
                out.push_str("<List>");
                xml_fields(&mut out, item);
                out.push_str("</List>");
            }
            close_tag(&mut out, list.wrapper);
        }
        if let Some((name, value)) = &self.trailer {
            xml_field(&mut out, name, value);
        }
        out.push_str("</xml>");
        out
    }

    fn render_json(&self) -> String {
        let mut obj = JsonObject::new();
        for (name, value) in &self.fields {
            obj.scalar(name, value);
        }
        if let Some(list) = &self.list {
            let rendered = match list.items.as_slice() {
                [one] => json_item(one),
                many => {
                    let items: Vec<String> = many.iter().map(|item| json_item(item)).collect();
                    format!("[{}]", items.join(","))
                }
            };
            obj.raw("List", &rendered);
        }
        if let Some((name, value)) = &self.trailer {
            obj.scalar(name, value);
        }
        obj.finish()
    }
}

fn xml_fields(out: &mut String, fields: &[(&str, Scalar<'_>)]) {
    for (name, value) in fields {
        xml_field(out, name, value);
    }
}

fn xml_field(out: &mut String, name: &str, value: &Scalar<'_>) {
    open_tag(out, name);
    match value {
        Scalar::Str(s) => push_cdata(out, s),
        // Writing to a String cannot fail.
        Scalar::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Scalar::Digits(d) => out.push_str(d),
    }
    close_tag(out, name);
}

fn open_tag(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close_tag(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// One CDATA section, split wherever the value contains `]]>` so the section cannot end early:
/// `a]]>b` becomes `<![CDATA[a]]]]><![CDATA[>b]]>`, which every parser joins back to `a]]>b`.
fn push_cdata(out: &mut String, value: &str) {
    out.push_str("<![CDATA[");
    let mut rest = value;
    while let Some(at) = rest.find("]]>") {
        let (before, after) = rest.split_at(at);
        push_xml_chars(out, before);
        out.push_str("]]]]><![CDATA[>");
        rest = after.get(3..).unwrap_or_default();
    }
    push_xml_chars(out, rest);
    out.push_str("]]>");
}

/// Copies `s`, replacing characters XML 1.0 forbids everywhere (even in CDATA) by U+FFFD.
fn push_xml_chars(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| {
        if is_xml_char(c) {
            c
        } else {
            char::REPLACEMENT_CHARACTER
        }
    }));
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn json_item(fields: &[(&str, Scalar<'_>)]) -> String {
    let mut obj = JsonObject::new();
    for (name, value) in fields {
        obj.scalar(name, value);
    }
    obj.finish()
}

/// A JSON object written in insertion order. serde_json's `Map` would sort the keys, and WeChat
/// (and anyone diffing against captured traffic) has them in a fixed order. serde_json still
/// does all the escaping.
struct JsonObject {
    out: String,
    empty: bool,
}

impl JsonObject {
    fn new() -> Self {
        JsonObject {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, name: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push_str(&json_string(name));
        self.out.push(':');
    }

    fn scalar(&mut self, name: &str, value: &Scalar<'_>) {
        let rendered = match value {
            Scalar::Str(s) => json_string(s),
            Scalar::Int(n) => n.to_string(),
            Scalar::Digits(d) => json_string(d),
        };
        self.raw(name, &rendered);
    }

    fn raw(&mut self, name: &str, rendered: &str) {
        self.key(name);
        self.out.push_str(rendered);
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// A JSON string literal; `Value`'s `Display` escapes without a fallible `Result`.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::MsgCrypt;
    use serde_json::{Value, json};

    fn strip_ws(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    fn popup(items: Vec<PopupItem>) -> Event {
        Event {
            to_user_name: "gh_123456789abc".into(),
            from_user_name: "otFpruAK8D-E6EfStSYonYSBZ8_4".into(),
            create_time: 1610969440,
            body: EventBody::Popup(items),
        }
    }

    fn popup_item(template_id: &str, status: &str, popup_scene: u32) -> PopupItem {
        PopupItem {
            template_id: template_id.into(),
            status: status.into(),
            popup_scene,
        }
    }

    fn sent(items: Vec<SentItem>) -> Event {
        Event {
            to_user_name: "gh_123456789abc".into(),
            from_user_name: "otFpruAK8D-E6EfStSYonYSBZ8_4".into(),
            create_time: 1700827132,
            body: EventBody::Sent(items),
        }
    }

    fn sent_item(msg_id: u64, error_code: i64, error_status: &str) -> SentItem {
        SentItem {
            template_id: "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc".into(),
            msg_id,
            error_code,
            error_status: error_status.into(),
        }
    }

    /// Concatenated CDATA contents of the first `<tag>` element, the way an XML parser reads it.
    fn cdata_text(xml: &str, tag: &str) -> String {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = xml.find(&open).unwrap() + open.len();
        let end = start + xml[start..].find(&close).unwrap();
        let mut inner = &xml[start..end];
        let mut text = String::new();
        while let Some(rest) = inner.strip_prefix("<![CDATA[") {
            let stop = rest.find("]]>").unwrap();
            text.push_str(&rest[..stop]);
            inner = &rest[stop + 3..];
        }
        assert_eq!(inner, "", "only CDATA sections inside <{tag}>");
        text
    }

    #[test]
    fn event_names_are_the_wechat_names_or_the_extensions_own() {
        assert_eq!(popup(vec![]).event_name(), "subscribe_msg_popup_event");
        assert_eq!(sent(vec![]).event_name(), "subscribe_msg_sent_event");
        let mut change = popup(vec![]);
        change.body = EventBody::Change(vec![]);
        assert_eq!(change.event_name(), "subscribe_msg_change_event");
        change.body = EventBody::Extension {
            event: "tuisong_msg_delivered".into(),
            fields: vec![],
        };
        assert_eq!(change.event_name(), "tuisong_msg_delivered");
    }

    #[test]
    fn popup_xml_matches_the_official_example() {
        let event = popup(vec![
            popup_item("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc", "accept", 2),
            popup_item("9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI", "reject", 2),
        ]);
        let official = r#"<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName>
<CreateTime>1610969440</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_popup_event]]></Event>
<SubscribeMsgPopupEvent>
 <List><TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>
 <List><TemplateId><![CDATA[9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString><PopupScene>2</PopupScene></List>
</SubscribeMsgPopupEvent></xml>"#;
        let rendered = event.render(Format::Xml);
        assert_eq!(rendered, strip_ws(official));
    }

    #[test]
    fn popup_json_matches_the_official_example_with_the_section_8_4_types() {
        let event = Event {
            to_user_name: "gh_123456789abc".into(),
            from_user_name: "o7esq5OI1Uej6Xixw1lA2H7XDVbc".into(),
            create_time: 1620973045,
            body: EventBody::Popup(vec![popup_item(
                "hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68",
                "accept",
                0,
            )]),
        };
        // The official example, with the two §8.4 decisions applied: CreateTime an integer
        // (the doc shows "1620973045"), and a single item as the object itself (the doc shows
        // a one-element array, which contradicts its own prose).
        let expected = r#"{"ToUserName":"gh_123456789abc","FromUserName":"o7esq5OI1Uej6Xixw1lA2H7XDVbc","CreateTime":1620973045,"MsgType":"event",
 "Event":"subscribe_msg_popup_event","List":{"TemplateId":"hD-ixGOhYmUfjOnI8MCzQMPshzGVeux_2vzyvQu7O68","SubscribeStatusString":"accept","PopupScene":"0"}}"#;
        assert_eq!(event.render(Format::Json), strip_ws(expected));
    }

    #[test]
    fn sent_xml_matches_the_official_example() {
        let event = sent(vec![sent_item(1700827132819554304, 0, "success")]);
        let official_tail = r#"<Event><![CDATA[subscribe_msg_sent_event]]></Event><SubscribeMsgSentEvent><List>
 <TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId><MsgID>1700827132819554304</MsgID>
 <ErrorCode>0</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent></xml>"#;
        let rendered = event.render(Format::Xml);
        let head = "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName><CreateTime>1700827132</CreateTime><MsgType><![CDATA[event]]></MsgType>";
        assert_eq!(rendered, format!("{head}{}", strip_ws(official_tail)));
    }

    #[test]
    fn sent_json_list_matches_the_official_example_except_error_code_is_an_integer() {
        let event = sent(vec![sent_item(1864323726461255680, 0, "success")]);
        let rendered = event.render(Format::Json);
        let list = r#""List":{"TemplateId":"VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc","MsgID":"1864323726461255680","ErrorCode":0,"ErrorStatus":"success"}}"#;
        assert!(rendered.ends_with(list), "{rendered}");
        assert!(
            rendered.starts_with(r#"{"ToUserName":"gh_123456789abc","FromUserName":"otFpruAK8D-E6EfStSYonYSBZ8_4","CreateTime":1700827132,"MsgType":"event","Event":"subscribe_msg_sent_event","List":"#),
            "{rendered}"
        );
    }

    #[test]
    fn change_events_render_in_both_formats() {
        let event = Event {
            to_user_name: "gh_1".into(),
            from_user_name: "o_1".into(),
            create_time: 1,
            body: EventBody::Change(vec![ChangeItem {
                template_id: "T1".into(),
                status: "reject".into(),
            }]),
        };
        assert_eq!(
            event.render(Format::Xml),
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o_1]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_change_event]]></Event><SubscribeMsgChangeEvent><List><TemplateId><![CDATA[T1]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString></List></SubscribeMsgChangeEvent></xml>"
        );
        assert_eq!(
            event.render(Format::Json),
            r#"{"ToUserName":"gh_1","FromUserName":"o_1","CreateTime":1,"MsgType":"event","Event":"subscribe_msg_change_event","List":{"TemplateId":"T1","SubscribeStatusString":"reject"}}"#
        );
    }

    #[test]
    fn one_item_is_a_json_object_and_several_are_an_array() {
        let one = popup(vec![popup_item("A", "accept", 0)]).render(Format::Json);
        let one: Value = serde_json::from_str(&one).unwrap();
        assert!(one["List"].is_object());

        let two = popup(vec![
            popup_item("A", "accept", 0),
            popup_item("B", "reject", 0),
        ])
        .render(Format::Json);
        let two: Value = serde_json::from_str(&two).unwrap();
        let list = two["List"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["TemplateId"], "B");
        assert_eq!(list[1]["SubscribeStatusString"], "reject");
    }

    #[test]
    fn several_items_repeat_list_inside_the_xml_wrapper() {
        let xml = sent(vec![
            sent_item(1, 0, "success"),
            sent_item(2, 1, "fail"),
            sent_item(3, 0, "success"),
        ])
        .render(Format::Xml);
        assert_eq!(xml.matches("<SubscribeMsgSentEvent>").count(), 1);
        assert_eq!(xml.matches("<List>").count(), 3);
        assert!(xml.contains("<MsgID>2</MsgID><ErrorCode>1</ErrorCode><ErrorStatus><![CDATA[fail]]></ErrorStatus></List><List>"));
        assert!(xml.ends_with("</List></SubscribeMsgSentEvent></xml>"));
    }

    #[test]
    fn an_empty_list_is_an_empty_wrapper_and_an_empty_array() {
        let event = popup(vec![]);
        assert!(
            event
                .render(Format::Xml)
                .ends_with("<SubscribeMsgPopupEvent></SubscribeMsgPopupEvent></xml>")
        );
        assert!(event.render(Format::Json).ends_with(r#","List":[]}"#));
    }

    #[test]
    fn json_parses_back_with_the_documented_types() {
        let popup_json = popup(vec![
            popup_item("A", "accept", 2),
            popup_item("B", "reject", 0),
        ])
        .render(Format::Json);
        let v: Value = serde_json::from_str(&popup_json).unwrap();
        assert_eq!(v["CreateTime"].as_i64(), Some(1610969440));
        assert_eq!(v["MsgType"], "event");
        assert_eq!(v["List"][0]["PopupScene"], json!("2"));
        assert_eq!(v["List"][1]["PopupScene"], json!("0"));

        let sent_json = sent(vec![sent_item(u64::MAX, -1, "system error")]).render(Format::Json);
        let v: Value = serde_json::from_str(&sent_json).unwrap();
        // MsgID survives beyond f64 precision because it is a string.
        assert_eq!(v["List"]["MsgID"], json!("18446744073709551615"));
        assert_eq!(v["List"]["ErrorCode"].as_i64(), Some(-1));
        assert!(v["CreateTime"].is_i64());
        assert_eq!(v["List"]["ErrorStatus"], "system error");
    }

    #[test]
    fn json_keys_keep_wechats_order() {
        let json = popup(vec![popup_item("A", "accept", 0)]).render(Format::Json);
        let order = [
            "\"ToUserName\"",
            "\"FromUserName\"",
            "\"CreateTime\"",
            "\"MsgType\"",
            "\"Event\"",
            "\"List\"",
            "\"TemplateId\"",
            "\"SubscribeStatusString\"",
            "\"PopupScene\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| json.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn cdata_never_ends_early_on_a_value_containing_the_terminator() {
        for value in [
            "a]]>b",
            "]]>",
            "]]>]]>",
            "]]]]>>",
            "x]]",
            "]",
            "",
            "<b>&amp;</b>",
        ] {
            let event = Event {
                to_user_name: "gh_1".into(),
                from_user_name: value.into(),
                create_time: 1,
                body: EventBody::Change(vec![ChangeItem {
                    template_id: value.into(),
                    status: "reject".into(),
                }]),
            };
            let xml = event.render(Format::Xml);
            assert_eq!(cdata_text(&xml, "FromUserName"), value, "{xml}");
            assert_eq!(cdata_text(&xml, "TemplateId"), value, "{xml}");
        }
        let mut out = String::new();
        push_cdata(&mut out, "a]]>b");
        assert_eq!(out, "<![CDATA[a]]]]><![CDATA[>b]]>");
    }

    #[test]
    fn characters_xml_cannot_carry_become_replacement_characters_in_xml_only() {
        let event = Event {
            to_user_name: "gh_1".into(),
            from_user_name: "a\u{0}b\u{1b}c\td\u{FFFF}订阅🚚".into(),
            create_time: 1,
            body: EventBody::Change(vec![]),
        };
        let xml = event.render(Format::Xml);
        assert_eq!(
            cdata_text(&xml, "FromUserName"),
            "a\u{FFFD}b\u{FFFD}c\td\u{FFFD}订阅🚚"
        );
        let v: Value = serde_json::from_str(&event.render(Format::Json)).unwrap();
        assert_eq!(v["FromUserName"], "a\u{0}b\u{1b}c\td\u{FFFF}订阅🚚");
    }

    #[test]
    fn json_escapes_quotes_and_backslashes_and_keeps_cjk() {
        let event = popup(vec![popup_item("say \"hi\" \\ 你好\n", "accept", 0)]);
        let json = event.render(Format::Json);
        assert!(json.contains("你好"), "{json}");
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["List"]["TemplateId"], "say \"hi\" \\ 你好\n");
    }

    #[test]
    fn extension_events_are_flat_with_typed_fields() {
        let event = Event {
            to_user_name: "gh_1".into(),
            from_user_name: "o_1".into(),
            create_time: 1714112445,
            body: EventBody::Extension {
                event: "tuisong_msg_delivered".into(),
                fields: vec![
                    ("MsgID".into(), ExtValue::Str("42".into())),
                    ("DeliveredAt".into(), ExtValue::Int(1714112446)),
                ],
            },
        };
        assert_eq!(
            event.render(Format::Xml),
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o_1]]></FromUserName><CreateTime>1714112445</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[tuisong_msg_delivered]]></Event><MsgID><![CDATA[42]]></MsgID><DeliveredAt>1714112446</DeliveredAt></xml>"
        );
        assert_eq!(
            event.render(Format::Json),
            r#"{"ToUserName":"gh_1","FromUserName":"o_1","CreateTime":1714112445,"MsgType":"event","Event":"tuisong_msg_delivered","MsgID":"42","DeliveredAt":1714112446}"#
        );
    }

    #[test]
    fn safe_bodies_carry_only_the_recipient_and_the_ciphertext() {
        let encrypt = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c==";
        assert_eq!(
            safe_body(Format::Xml, "gh_97417a04a28d", encrypt),
            format!(
                "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            )
        );
        assert_eq!(
            safe_body(Format::Json, "gh_97417a04a28d", encrypt),
            format!(r#"{{"ToUserName":"gh_97417a04a28d","Encrypt":"{encrypt}"}}"#)
        );
    }

    #[test]
    fn compatible_bodies_are_the_plaintext_event_with_encrypt_last() {
        let event = popup(vec![popup_item("A", "accept", 0)]);
        let xml = compatible_body(Format::Xml, &event, "CIPHER");
        let plain_xml = event.render(Format::Xml);
        assert_eq!(
            xml,
            format!(
                "{}<Encrypt><![CDATA[CIPHER]]></Encrypt></xml>",
                plain_xml.strip_suffix("</xml>").unwrap()
            )
        );

        let json = compatible_body(Format::Json, &event, "CIPHER");
        let plain_json = event.render(Format::Json);
        assert_eq!(
            json,
            format!(
                r#"{},"Encrypt":"CIPHER"}}"#,
                plain_json.strip_suffix('}').unwrap()
            )
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Encrypt"], "CIPHER");
        assert_eq!(v["Event"], "subscribe_msg_popup_event");
    }

    #[test]
    fn a_rendered_event_survives_the_safe_mode_envelope() {
        let crypt = MsgCrypt::new(&"A".repeat(43), "wxba5fad812f8e6fb9").unwrap();
        let event = sent(vec![sent_item(1864323726461255680, 0, "success")]);
        for format in [Format::Xml, Format::Json] {
            let plain = event.render(format);
            let encrypt = crypt.encrypt(&plain);
            let body = safe_body(format, &event.to_user_name, &encrypt);
            let carried = match format {
                Format::Xml => cdata_text(&body, "Encrypt"),
                Format::Json => serde_json::from_str::<Value>(&body).unwrap()["Encrypt"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            };
            assert_eq!(crypt.decrypt(&carried).unwrap(), plain);
        }
    }
}
