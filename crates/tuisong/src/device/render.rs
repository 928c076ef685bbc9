//! Drawing a card for a terminal: CJK-aware widths, control characters blanked, times at
//! a fixed offset.

use tuisong_wire::device::Card;

/// Cards are drawn this many terminal columns wide (CJK characters count two).
const CARD_WIDTH: usize = 60;

/// Terminal columns of a character: CJK and full-width forms take two.
fn char_width(c: char) -> usize {
    let c = c as u32;
    let wide = matches!(c,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Text from the server, made safe for a terminal: control characters (escape
/// sequences, line breaks) would let a sender redraw the screen.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Unix milliseconds → `YYYY-MM-DD HH:MM` at a fixed offset.
fn format_time(ms: i64, offset_min: i64) -> String {
    crate::civil::minute_text(ms.div_euclid(1000) + offset_min * 60)
}

/// A card as lines of text (no trailing newline).
pub(super) fn render_card(c: &Card, offset_min: i64) -> String {
    let title = if c.urgent {
        format!("【紧急】{}", clean(&c.title))
    } else {
        clean(&c.title)
    };
    let head = format!("┌─ {title} ");
    let meta = format!(
        " msgid {} · {}",
        c.msgid,
        format_time(c.sent_at, offset_min)
    );
    let fill = CARD_WIDTH
        .saturating_sub(width(&head) + width(&meta))
        .max(3);
    let mut out = format!("{head}{}{meta}\n", "─".repeat(fill));
    let name_w = c.rows.iter().map(|r| width(&clean(&r.name))).max();
    for r in &c.rows {
        let name = clean(&r.name);
        let pad = name_w.unwrap_or(0) - width(&name) + 3;
        out.push_str(&format!("│ {name}{}{}\n", " ".repeat(pad), clean(&r.value)));
    }
    if let Some(page) = c.page.as_deref().filter(|p| !p.is_empty()) {
        out.push_str(&format!("│ 进入小程序查看 → {}\n", clean(page)));
    }
    out.push('└');
    out.push_str(&"─".repeat(30));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_urgent_card_is_marked_and_control_characters_are_blanked() {
        let c: Card = serde_json::from_value(json!({
            "seq": 1, "msgid": 1, "title": "告警\u{1b}[2J", "urgent": true, "sent_at": 0,
            "rows": [{"name": "a", "value": "x\ny"}]
        }))
        .expect("card");
        let shown = render_card(&c, 0);
        assert!(shown.starts_with("┌─ 【紧急】告警 [2J"), "{shown}");
        assert!(shown.contains("│ a   x y"), "{shown}");
        assert!(!shown.contains('\u{1b}'));
        assert!(shown.contains("1970-01-01 00:00"));
    }
}
