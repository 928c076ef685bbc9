//! Fuzz target bodies. Each function takes arbitrary bytes, drives one parser or renderer
//! of ours with them and panics when a property that must hold for every input fails;
//! returning normally is a pass. The same functions run under libFuzzer (`fuzz/`, nightly,
//! `cargo fuzz run <name>`) and over the kept corpus in `tests/corpus.rs` on stable, so a
//! crash found once stays a regression test.
//!
//! | target    | what it drives                                   | what must hold |
//! |-----------|--------------------------------------------------|----------------|
//! | `crypto`  | message-push AES: decrypt of any text; encrypt → decrypt | no panic; round trip is exact |
//! | `event`   | a push event rendered as XML and JSON            | the values read back exactly (CDATA split at `]]>`, JSON escaping) |
//! | `keyword` | the keyword rules of a template's data           | no panic; same answer twice; `thing` never passes over 20 characters |
//! | `frames`  | device frames from any JSON text                 | no panic; a parsed frame re-encodes to the same frame |
//! | `send`    | a send's fields, parsed and planned against a library template | no panic; a plan stores only the template's keys |

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use tuisong_core::keyword::{self, Rule};
use tuisong_wire::crypto::MsgCrypt;
use tuisong_wire::device::{ClientFrame, FrameHead, ServerFrame};
use tuisong_wire::event::{ChangeItem, Event, EventBody, ExtValue, Format, PopupItem, SentItem};

/// The targets by name, for the corpus replay.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("crypto", crypto),
    ("event", event),
    ("keyword", keyword),
    ("frames", frames),
    ("send", send),
];

/// Splits input into text fields at NUL bytes (lossy UTF-8, so every input is usable).
fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

fn field(f: &[String], i: usize) -> &str {
    f.get(i).map(String::as_str).unwrap_or("")
}

/// The EncodingAESKey of the spec's official vector (43 characters).
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";

pub fn crypto(data: &[u8]) {
    let Ok(c) = MsgCrypt::new(AES_KEY, APPID) else {
        panic!("the spec's key must load");
    };
    // Any text handed to decrypt is refused or decoded, never a panic.
    let text = String::from_utf8_lossy(data);
    let _ = c.decrypt(&text);
    // Whatever a sender encrypts comes back exactly.
    let mut random = [0u8; 16];
    for (r, b) in random.iter_mut().zip(data) {
        *r = *b;
    }
    let msg = String::from_utf8_lossy(data.get(16..).unwrap_or_default());
    let sealed = c.encrypt_with_random(&random, &msg);
    match c.decrypt(&sealed) {
        Ok(back) => assert_eq!(back, msg, "round trip"),
        Err(e) => panic!("our own ciphertext was refused: {e}"),
    }
    // And a foreign appid's key refuses it.
    if let Ok(other) = MsgCrypt::new(AES_KEY, "wx0000000000000000") {
        assert!(
            other.decrypt(&sealed).is_err(),
            "another appid must not decrypt"
        );
    }
}

/// Reads the CDATA sections of the element starting at `xml[at..]` (`<Name>…</Name>`),
/// joined as an XML parser joins them; returns the text and where the element ends.
fn read_cdata_element(xml: &str, at: usize, name: &str) -> Option<(String, usize)> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml.get(at..)?.strip_prefix(open.as_str())?;
    let mut text = String::new();
    let mut used = at + open.len();
    while let Some(after) = rest.strip_prefix("<![CDATA[") {
        let end = after.find("]]>")?;
        text.push_str(&after[..end]);
        used += "<![CDATA[".len() + end + "]]>".len();
        rest = &after[end + 3..];
    }
    rest.strip_prefix(close.as_str())?;
    Some((text, used + close.len()))
}

/// XML 1.0's `Char` production: what may appear anywhere in a document, CDATA included.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A value as an XML document can carry it: forbidden characters become U+FFFD.
fn as_xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if is_xml_char(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

pub fn event(data: &[u8]) {
    let f = fields(data);
    let kind = data.first().copied().unwrap_or(0) % 4;
    let body = match kind {
        0 => EventBody::Popup(vec![PopupItem {
            template_id: field(&f, 2).to_owned(),
            status: field(&f, 3).to_owned(),
            popup_scene: 0,
        }]),
        1 => EventBody::Change(vec![ChangeItem {
            template_id: field(&f, 2).to_owned(),
            status: field(&f, 3).to_owned(),
        }]),
        2 => EventBody::Sent(vec![SentItem {
            template_id: field(&f, 2).to_owned(),
            msg_id: data.len() as u64,
            error_code: 0,
            error_status: field(&f, 3).to_owned(),
        }]),
        _ => EventBody::Extension {
            event: "tuisong_fuzz".to_owned(),
            fields: vec![
                ("Note".to_owned(), ExtValue::Str(field(&f, 2).to_owned())),
                ("Count".to_owned(), ExtValue::Int(i64::from(kind))),
            ],
        },
    };
    let ev = Event {
        to_user_name: field(&f, 0).to_owned(),
        from_user_name: field(&f, 1).to_owned(),
        create_time: 1_700_000_000,
        body,
    };
    // XML: the two leading string fields read back exactly, however they are quoted.
    let xml = ev.render(Format::Xml);
    let start = xml.strip_prefix("<xml>").map(|_| "<xml>".len());
    let Some(start) = start else {
        panic!("XML starts with <xml>: {xml}")
    };
    let Some((to, next)) = read_cdata_element(&xml, start, "ToUserName") else {
        panic!("ToUserName is one CDATA element: {xml}")
    };
    assert_eq!(to, as_xml_chars(&ev.to_user_name));
    let Some((from, _)) = read_cdata_element(&xml, next, "FromUserName") else {
        panic!("FromUserName is one CDATA element: {xml}")
    };
    assert_eq!(from, as_xml_chars(&ev.from_user_name));
    assert!(xml.ends_with("</xml>"), "{xml}");
    assert!(
        xml.chars().all(is_xml_char),
        "no character XML 1.0 forbids: {xml:?}"
    );
    // JSON: valid, and the strings are the values given.
    let json = ev.render(Format::Json);
    let v: serde_json::Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => panic!("rendered JSON does not parse ({e}): {json}"),
    };
    assert_eq!(v["ToUserName"], ev.to_user_name.as_str());
    assert_eq!(v["FromUserName"], ev.from_user_name.as_str());
}

pub fn keyword(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let rule = Rule::ALL[usize::from(pick) % Rule::ALL.len()];
    let f = fields(rest);
    let value = field(&f, 0);
    let enum_values: Vec<String> = f.iter().skip(1).cloned().collect();
    let first = keyword::check(rule, value, &enum_values);
    let again = keyword::check(rule, value, &enum_values);
    assert_eq!(first, again, "the same value gets the same answer");
    if first.is_ok() {
        let chars = value.chars().count();
        match rule {
            Rule::Thing => assert!((1..=20).contains(&chars), "thing passed {chars} chars"),
            Rule::Enum => assert!(
                enum_values.iter().any(|e| e == value),
                "enum outside its list"
            ),
            _ => {}
        }
    }
}

pub fn frames(data: &[u8]) {
    if let Ok(frame) = serde_json::from_slice::<ClientFrame>(data) {
        let text = frame.to_text();
        match serde_json::from_str::<ClientFrame>(&text) {
            Ok(back) => assert_eq!(back, frame, "re-encoded frame differs: {text}"),
            Err(e) => panic!("our own frame text does not parse ({e}): {text}"),
        }
    }
    let _ = serde_json::from_slice::<ServerFrame>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<FrameHead<'_>>(text);
        let _ = tuisong_wire::device::clean_device_name(text);
    }
}

pub fn send(data: &[u8]) {
    use tuisong_core::ids::AppId;
    use tuisong_core::policy::Policy;
    use tuisong_core::service::{ExtraKeys, RawSend, plan_send};
    use tuisong_core::template::PrivateTemplate;

    let lib = tuisong_core::library::Library::builtin();
    let pick = usize::from(data.first().copied().unwrap_or(0));
    let t = &lib.templates[pick % lib.templates.len()];
    let kids: Vec<u32> = t.keywords.iter().take(5).map(|k| k.kid).collect();
    let appid = AppId::generate();
    let Ok(template) = PrivateTemplate::build(lib, &appid, t.tid, &kids, "", 0) else {
        panic!("a library template with its own keywords must build");
    };
    let f = fields(data.get(1..).unwrap_or_default());
    // Pairs of (key, value) after the fixed fields; keys often the template's own.
    let mut map = BTreeMap::new();
    let keys: Vec<String> = template.keywords.iter().map(|k| k.key()).collect();
    for (i, pair) in f.get(4..).unwrap_or_default().chunks(2).enumerate() {
        let key = match pair.first() {
            Some(k) if k.len() == 1 => keys[i % keys.len()].clone(),
            Some(k) => k.clone(),
            None => continue,
        };
        map.insert(key, pair.get(1).cloned().unwrap_or_default());
    }
    let raw = RawSend {
        touser: field(&f, 0).to_owned(),
        template_id: template.id.to_string(),
        page: Some(field(&f, 1).to_owned()),
        data: map,
        lang: Some(field(&f, 2).to_owned()),
        miniprogram_state: Some(field(&f, 3).to_owned()),
        extra_keys: if pick % 2 == 0 {
            ExtraKeys::Ignore
        } else {
            ExtraKeys::Refuse
        },
        ..RawSend::default()
    };
    let Ok(req) = raw.parse() else {
        return;
    };
    if let Ok(plan) = plan_send(
        &appid,
        req,
        &template,
        &Policy::default(),
        None,
        1_795_495_200_000,
    ) {
        assert!(
            plan.data.keys().all(|k| keys.contains(k)),
            "only the template's keys are stored"
        );
        assert_eq!(plan.rows.len(), template.keywords.len());
    }
}
