//! Keyword (template placeholder) value rules, as WeChat checks them on
//! `subscribe/send` (spec §5). This module decides which `rule` names exist, how
//! a placeholder key is built from a rule and a kid (`thing1`, `enum_string2`)
//! and split back, and whether a value in `data.<key>.value` passes its rule.
//! It answers only `Empty` or `Invalid`. The server turns that into errcode 47003
//! `argument invalid! data.<key>.value is emtpy` / `… value invalid` (spec §3.3).
//! No I/O.
//!
//! The official table leaves some points open. Our choices, each **UNCONFIRMED**
//! against the real server:
//! - **Character counting.** A "character" is a Unicode scalar value
//!   (`str::chars`). CJK, ASCII letters and "😀" each count as 1. "👍🏻" (thumb +
//!   skin-tone modifier) counts as **2**, and so does every other emoji made of
//!   several scalars (flags, ZWJ families count even more).
//! - **Whitespace is empty.** A value that is empty or only whitespace (Unicode
//!   `White_Space`, so U+3000 too) is `Empty` for every rule, before the rule is
//!   looked at. Apart from that, values are checked exactly as sent and are never
//!   trimmed: `" 15:01"` is an invalid `time`.
//! - **`short_thing` limit.** 5 characters, with the same content rule as `thing`.
//!   The official table does not list `short_thing` at all.
//! - **Placeholder key = rule + kid** (spec §4), except that `enum` uses the prefix
//!   `enum_string`. Only the canonical form is parsed (no leading zeros), so
//!   parsing is the exact inverse of [`placeholder_key`].
//! - **time / date.** The hour may have 1 or 2 digits in every form, so `9:05:00`
//!   is accepted along with `9:05`, `09:05` and `09:05:00`. Minutes and seconds
//!   always have 2 digits. Between a date and a clock time there must be one or
//!   more ASCII spaces. A range has exactly two points joined by a half-width `~`,
//!   with optional ASCII spaces around it. We do not check that the range runs
//!   forward. A full-width `～` is invalid, which matches the error reported from
//!   the real server.
//! - **name.** A value that contains a CJK ideograph is judged as Chinese: at most 10
//!   characters, made only of CJK ideographs, `·` and ASCII letters. Any other
//!   value is judged as Latin: at most 20 characters of ASCII letters, space, `.`,
//!   `·`, `-` and `'`, with at least one letter.

use std::fmt;

/// A keyword rule as it appears in `rule` of getpubtemplatekeywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Thing,
    Number,
    Letter,
    Symbol,
    CharacterString,
    Time,
    Date,
    Amount,
    PhoneNumber,
    CarNumber,
    Name,
    Phrase,
    Enum,
    ShortThing,
}

impl Rule {
    /// Every rule, once each.
    pub const ALL: [Rule; 14] = [
        Rule::Thing,
        Rule::Number,
        Rule::Letter,
        Rule::Symbol,
        Rule::CharacterString,
        Rule::Time,
        Rule::Date,
        Rule::Amount,
        Rule::PhoneNumber,
        Rule::CarNumber,
        Rule::Name,
        Rule::Phrase,
        Rule::Enum,
        Rule::ShortThing,
    ];

    /// The rule with this exact (case-sensitive) name, e.g. `"character_string"`, `"enum"`.
    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.as_str() == s)
    }

    /// The rule name as WeChat writes it in `rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Thing => "thing",
            Rule::Number => "number",
            Rule::Letter => "letter",
            Rule::Symbol => "symbol",
            Rule::CharacterString => "character_string",
            Rule::Time => "time",
            Rule::Date => "date",
            Rule::Amount => "amount",
            Rule::PhoneNumber => "phone_number",
            Rule::CarNumber => "car_number",
            Rule::Name => "name",
            Rule::Phrase => "phrase",
            Rule::Enum => "enum",
            Rule::ShortThing => "short_thing",
        }
    }

    /// Prefix of the placeholder key: the rule name, except Enum → "enum_string".
    pub fn key_prefix(self) -> &'static str {
        match self {
            Rule::Enum => "enum_string",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Placeholder key for a keyword: key_prefix + kid, e.g. ("thing", 1) → "thing1", (Enum, 2) → "enum_string2".
pub fn placeholder_key(rule: Rule, kid: u32) -> String {
    format!("{}{}", rule.key_prefix(), kid)
}

/// Split a key like "character_string12" into (rule, kid). None if it is not rule+digits.
///
/// The prefix must be a [`Rule::key_prefix`] exactly, so `"enum1"` is refused,
/// `"thing1"` is never a `short_thing`, and `"short_thing1"` is never a `thing`.
/// The kid must be ASCII digits without a leading zero (`"thing0"` is fine) that
/// fit in a `u32`. With these limits, `parse_placeholder_key(k) == Some((r, n))`
/// exactly when `placeholder_key(r, n) == k`.
pub fn parse_placeholder_key(key: &str) -> Option<(Rule, u32)> {
    let digit_count = key.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (prefix, digits) = key.split_at_checked(key.len().checked_sub(digit_count)?)?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    let kid = digits.parse::<u32>().ok()?;
    let rule = Rule::ALL
        .into_iter()
        .find(|rule| rule.key_prefix() == prefix)?;
    Some((rule, kid))
}

/// Why a keyword value was refused. The Display text is the tail of WeChat's
/// 47003 errmsg after `data.<key>.value `, typo included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    /// Empty or only whitespace.
    #[error("is emtpy")]
    Empty,
    /// Breaks the rule.
    #[error("invalid")]
    Invalid,
}

/// Check a value against its rule. `enum_values` is used only by Rule::Enum.
///
/// An empty or whitespace-only value is [`KeywordError::Empty`] for every rule.
/// Any other value that breaks the rule is [`KeywordError::Invalid`]. This
/// function never panics.
pub fn check(rule: Rule, value: &str, enum_values: &[String]) -> Result<(), KeywordError> {
    if value.trim().is_empty() {
        return Err(KeywordError::Empty);
    }
    let ok = match rule {
        Rule::Thing => is_thing(value, THING_MAX_CHARS),
        Rule::ShortThing => is_thing(value, SHORT_THING_MAX_CHARS),
        Rule::Number => is_number(value),
        Rule::Letter => {
            fits(value, LETTER_MAX_CHARS) && value.chars().all(|c| c.is_ascii_alphabetic())
        }
        Rule::Symbol => {
            fits(value, SYMBOL_MAX_CHARS) && value.chars().all(|c| c.is_ascii_punctuation())
        }
        Rule::CharacterString => {
            fits(value, CHARACTER_STRING_MAX_CHARS)
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
        }
        Rule::Time => point_or_range(value, is_time_point),
        Rule::Date => point_or_range(value, is_date_point),
        Rule::Amount => is_amount(value),
        Rule::PhoneNumber => is_phone_number(value),
        Rule::CarNumber => is_car_number(value),
        Rule::Name => is_name(value),
        Rule::Phrase => fits(value, PHRASE_MAX_CHARS) && value.chars().all(is_cjk_ideograph),
        Rule::Enum => enum_values.iter().any(|allowed| allowed == value),
    };
    if ok {
        Ok(())
    } else {
        Err(KeywordError::Invalid)
    }
}

/// Why `value` breaks `rule`, for people: the native API's message says this where
/// WeChat's errmsg says only `invalid`. Meant for a value [`check`] refused.
pub fn explain(rule: Rule, value: &str, enum_values: &[String]) -> String {
    let n = value.chars().count();
    let long =
        |max: usize| (n > max).then(|| format!("{rule} allows at most {max} characters, got {n}"));
    if value.trim().is_empty() {
        return format!("{rule} must not be empty");
    }
    let why = match rule {
        Rule::Thing => long(THING_MAX_CHARS),
        Rule::ShortThing => long(SHORT_THING_MAX_CHARS),
        Rule::Number => long(NUMBER_MAX_CHARS),
        Rule::Letter => long(LETTER_MAX_CHARS),
        Rule::Symbol => long(SYMBOL_MAX_CHARS),
        Rule::CharacterString => long(CHARACTER_STRING_MAX_CHARS),
        Rule::PhoneNumber => long(PHONE_NUMBER_MAX_CHARS),
        Rule::Phrase => long(PHRASE_MAX_CHARS),
        Rule::CarNumber => long(8),
        _ => None,
    };
    if let Some(why) = why {
        return why;
    }
    match rule {
        Rule::Thing | Rule::ShortThing => format!("{rule} must not contain control characters"),
        Rule::Number => "number allows digits with at most one '.', like 3 or 12.50".into(),
        Rule::Letter => "letter allows only ASCII letters".into(),
        Rule::Symbol => "symbol allows only ASCII punctuation".into(),
        Rule::CharacterString => {
            "character_string allows only ASCII letters, digits and punctuation".into()
        }
        Rule::Time => {
            "time allows a clock time like 15:01 or 2026-11-24 15:01, or a range of two joined by ~"
                .into()
        }
        Rule::Date => {
            "date allows a real date like 2026-11-24 or 2026年11月24日 (with an optional time), or a range of two joined by ~"
                .into()
        }
        Rule::Amount => format!(
            "amount allows at most {AMOUNT_MAX_DIGITS} digits with up to 2 decimals, an optional leading ¥ ￥ $ € £ and a trailing 元"
        ),
        Rule::PhoneNumber => "phone_number allows digits, + - ( ) and spaces".into(),
        Rule::CarNumber => {
            "car_number allows a plate of 7 or 8 characters: a CJK province character, then capital letters and digits".into()
        }
        Rule::Name => format!(
            "name allows a Chinese name of at most {NAME_CHINESE_MAX_CHARS} characters or a Latin one of at most {NAME_LATIN_MAX_CHARS} letters, spaces and . · - '"
        ),
        Rule::Phrase => "phrase allows only CJK ideographs".into(),
        Rule::Enum => format!("enum allows only one of: {}", enum_values.join(", ")),
    }
}

/// A CJK ideograph: U+4E00–U+9FFF, U+3400–U+4DBF, U+F900–U+FAFF or U+20000–U+2FA1F.
///
/// Chinese punctuation such as `。` or `·` is not an ideograph.
pub fn is_cjk_ideograph(c: char) -> bool {
    matches!(
        c,
        '\u{4E00}'..='\u{9FFF}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{2FA1F}'
    )
}

const THING_MAX_CHARS: usize = 20;
/// UNCONFIRMED: the official table does not list `short_thing`. We use 5.
const SHORT_THING_MAX_CHARS: usize = 5;
const NUMBER_MAX_CHARS: usize = 32;
const LETTER_MAX_CHARS: usize = 32;
const SYMBOL_MAX_CHARS: usize = 5;
const CHARACTER_STRING_MAX_CHARS: usize = 32;
const AMOUNT_MAX_DIGITS: usize = 10;
const PHONE_NUMBER_MAX_CHARS: usize = 17;
const NAME_CHINESE_MAX_CHARS: usize = 10;
const NAME_LATIN_MAX_CHARS: usize = 20;
const PHRASE_MAX_CHARS: usize = 5;
const CURRENCY_SYMBOLS: [char; 5] = ['¥', '￥', '$', '€', '£'];

/// At most `max` chars. Stops counting early, so a huge value costs only `max` steps.
fn fits(value: &str, max: usize) -> bool {
    value.chars().nth(max).is_none()
}

/// One or more ASCII digits, nothing else.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_thing(value: &str, max: usize) -> bool {
    fits(value, max) && !value.chars().any(char::is_control)
}

fn is_number(value: &str) -> bool {
    fits(value, NUMBER_MAX_CHARS)
        && match value.split_once('.') {
            None => all_digits(value),
            // A second '.' lands in `fraction` and fails `all_digits`.
            Some((integer, fraction)) => all_digits(integer) && all_digits(fraction),
        }
}

fn is_amount(value: &str) -> bool {
    let value = value
        .strip_prefix(|c: char| CURRENCY_SYMBOLS.contains(&c))
        .unwrap_or(value);
    let value = value.strip_suffix('元').unwrap_or(value);
    let (integer, fraction) = match value.split_once('.') {
        None => (value, ""),
        Some((integer, fraction)) => {
            if !all_digits(fraction) || fraction.len() > 2 {
                return false;
            }
            (integer, fraction)
        }
    };
    // Both parts are ASCII digits here, so byte length = digit count.
    all_digits(integer) && integer.len() + fraction.len() <= AMOUNT_MAX_DIGITS
}

fn is_phone_number(value: &str) -> bool {
    fits(value, PHONE_NUMBER_MAX_CHARS)
        && value.chars().any(|c| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | ' '))
}

fn is_plate_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn is_car_number(value: &str) -> bool {
    if !fits(value, 8) {
        return false;
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 7 {
        return false;
    }
    let [first, middle @ .., last] = chars.as_slice() else {
        return false;
    };
    is_cjk_ideograph(*first)
        && middle.iter().copied().all(is_plate_char)
        && (is_plate_char(*last) || is_cjk_ideograph(*last))
}

fn is_name(value: &str) -> bool {
    if value.chars().any(is_cjk_ideograph) {
        fits(value, NAME_CHINESE_MAX_CHARS)
            && value
                .chars()
                .all(|c| is_cjk_ideograph(c) || c == '·' || c.is_ascii_alphabetic())
    } else {
        fits(value, NAME_LATIN_MAX_CHARS)
            && value.chars().any(|c| c.is_ascii_alphabetic())
            && value
                .chars()
                .all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '.' | '·' | '-' | '\''))
    }
}

/// One point, or two points joined by a half-width `~` with optional ASCII spaces around it.
fn point_or_range(value: &str, is_point: fn(&str) -> bool) -> bool {
    match value.split_once('~') {
        None => is_point(value),
        // A second '~' stays in `to`. No point allows '~', so that side fails.
        Some((from, to)) => {
            is_point(from.trim_end_matches(' ')) && is_point(to.trim_start_matches(' '))
        }
    }
}

/// A clock time, optionally after a date and one or more spaces.
fn is_time_point(s: &str) -> bool {
    let mut with_date = Cursor::new(s);
    if date(&mut with_date).is_some() {
        return with_date.spaces() > 0 && clock(&mut with_date).is_some() && with_date.is_done();
    }
    let mut bare = Cursor::new(s);
    clock(&mut bare).is_some() && bare.is_done()
}

/// A date, optionally followed by one or more spaces and a clock time.
fn is_date_point(s: &str) -> bool {
    let mut cursor = Cursor::new(s);
    if date(&mut cursor).is_none() {
        return false;
    }
    cursor.is_done() || (cursor.spaces() > 0 && clock(&mut cursor).is_some() && cursor.is_done())
}

/// `YYYY年M月D日`, `YYYY-M-D` or `YYYY/M/D`. Month and day have 1 or 2 digits and must exist in that year.
fn date(c: &mut Cursor<'_>) -> Option<()> {
    let year = c.number(4, 4)?;
    let (month, day) = if c.eat('年') {
        let month = c.number(1, 2)?;
        c.expect('月')?;
        let day = c.number(1, 2)?;
        c.expect('日')?;
        (month, day)
    } else {
        let separator = ['-', '/'].into_iter().find(|&sep| c.eat(sep))?;
        let month = c.number(1, 2)?;
        c.expect(separator)?;
        let day = c.number(1, 2)?;
        (month, day)
    };
    let last_day = days_in_month(year, month)?;
    (1..=last_day).contains(&day).then_some(())
}

/// `H:MM`, `HH:MM`, `H:MM:SS` or `HH:MM:SS` on a 24-hour clock.
fn clock(c: &mut Cursor<'_>) -> Option<()> {
    let hour = c.number(1, 2)?;
    c.expect(':')?;
    let minute = c.number(2, 2)?;
    let second = if c.eat(':') { c.number(2, 2)? } else { 0 };
    (hour < 24 && minute < 60 && second < 60).then_some(())
}

fn days_in_month(year: u32, month: u32) -> Option<u32> {
    // Gregorian: every 4th year, except centuries not divisible by 400.
    // (`is_multiple_of` would need Rust 1.87; the workspace allows 1.85.)
    let leap = matches!((year % 4, year % 100, year % 400), (0, 1.., _) | (_, _, 0));
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => Some(31),
        4 | 6 | 9 | 11 => Some(30),
        2 if leap => Some(29),
        2 => Some(28),
        _ => None,
    }
}

/// The unread rest of a date/time value. Moves only by whole chars or ASCII digits, so it never slices inside a char.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { rest: s }
    }

    fn is_done(&self) -> bool {
        self.rest.is_empty()
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// Skips ASCII spaces and returns how many there were.
    fn spaces(&mut self) -> usize {
        let rest = self.rest.trim_start_matches(' ');
        let skipped = self.rest.len() - rest.len();
        self.rest = rest;
        skipped
    }

    /// The whole run of ASCII digits here. None if the run is shorter than `min` or longer than `max`.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let len = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        if len < min || len > max {
            return None;
        }
        let (digits, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        digits.bytes().try_fold(0u32, |acc, b| {
            acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_says_the_rule_the_limit_and_what_was_given() {
        assert_eq!(
            explain(Rule::Thing, &"长".repeat(26), &[]),
            "thing allows at most 20 characters, got 26"
        );
        assert_eq!(explain(Rule::Thing, " ", &[]), "thing must not be empty");
        assert!(explain(Rule::Time, "25:00", &[]).starts_with("time allows"));
        let allowed = ["已发货".to_owned(), "已签收".to_owned()];
        assert_eq!(
            explain(Rule::Enum, "丢了", &allowed),
            "enum allows only one of: 已发货, 已签收"
        );
        for rule in Rule::ALL {
            assert!(explain(rule, "\u{1}x", &[]).starts_with(rule.as_str()));
        }
    }

    fn ok(rule: Rule, value: &str) {
        assert_eq!(
            check(rule, value, &[]),
            Ok(()),
            "{rule} should accept {value:?}"
        );
    }

    fn invalid(rule: Rule, value: &str) {
        assert_eq!(
            check(rule, value, &[]),
            Err(KeywordError::Invalid),
            "{rule} should refuse {value:?} as invalid"
        );
    }

    fn repeat(s: &str, n: usize) -> String {
        s.repeat(n)
    }

    // ----- rules and keys -------------------------------------------------------------

    #[test]
    fn all_lists_fourteen_distinct_rules() {
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            assert!(seen.insert(rule), "{rule} listed twice");
        }
        assert_eq!(seen.len(), 14);
    }

    #[test]
    fn every_rule_round_trips_through_its_name() {
        for rule in Rule::ALL {
            assert_eq!(Rule::parse(rule.as_str()), Some(rule));
            assert_eq!(rule.to_string(), rule.as_str());
        }
        assert_eq!(Rule::parse("character_string"), Some(Rule::CharacterString));
        assert_eq!(Rule::parse("enum"), Some(Rule::Enum));
        assert_eq!(Rule::parse("short_thing"), Some(Rule::ShortThing));
        assert_eq!(Rule::parse("phone_number"), Some(Rule::PhoneNumber));
        assert_eq!(Rule::parse("car_number"), Some(Rule::CarNumber));
    }

    #[test]
    fn rule_names_are_the_same_in_serde_and_as_str() {
        for rule in Rule::ALL {
            let json = serde_json::to_string(&rule).expect("serialize");
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
            let back: Rule = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, rule);
        }
    }

    #[test]
    fn unknown_or_differently_cased_rule_names_do_not_parse() {
        for name in [
            "",
            "Thing",
            "THING",
            "things",
            "enum_string",
            "string",
            " thing",
            "thing1",
        ] {
            assert_eq!(Rule::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn key_prefix_is_the_rule_name_except_enum_which_is_enum_string() {
        for rule in Rule::ALL {
            let expected = if rule == Rule::Enum {
                "enum_string"
            } else {
                rule.as_str()
            };
            assert_eq!(rule.key_prefix(), expected);
        }
    }

    #[test]
    fn placeholder_keys_round_trip_for_every_rule() {
        for rule in Rule::ALL {
            for kid in [0, 1, 2, 9, 10, 12, 99, 1000, u32::MAX] {
                let key = placeholder_key(rule, kid);
                assert_eq!(parse_placeholder_key(&key), Some((rule, kid)), "{key}");
            }
        }
    }

    #[test]
    fn placeholder_key_joins_prefix_and_kid() {
        assert_eq!(placeholder_key(Rule::Thing, 1), "thing1");
        assert_eq!(placeholder_key(Rule::Enum, 2), "enum_string2");
        assert_eq!(placeholder_key(Rule::ShortThing, 3), "short_thing3");
        assert_eq!(
            placeholder_key(Rule::CharacterString, 12),
            "character_string12"
        );
    }

    #[test]
    fn enum_string2_short_thing3_and_character_string12_split_into_rule_and_kid() {
        assert_eq!(parse_placeholder_key("enum_string2"), Some((Rule::Enum, 2)));
        assert_eq!(
            parse_placeholder_key("short_thing3"),
            Some((Rule::ShortThing, 3))
        );
        assert_eq!(
            parse_placeholder_key("character_string12"),
            Some((Rule::CharacterString, 12))
        );
        assert_eq!(
            parse_placeholder_key("phone_number7"),
            Some((Rule::PhoneNumber, 7))
        );
        assert_eq!(parse_placeholder_key("date2"), Some((Rule::Date, 2)));
    }

    #[test]
    fn thing1_is_a_thing_and_short_thing1_is_a_short_thing() {
        assert_eq!(parse_placeholder_key("thing1"), Some((Rule::Thing, 1)));
        assert_eq!(
            parse_placeholder_key("short_thing1"),
            Some((Rule::ShortThing, 1))
        );
        assert_eq!(parse_placeholder_key("_thing1"), None);
        assert_eq!(parse_placeholder_key("short_1"), None);
    }

    #[test]
    fn keys_without_digits_or_with_an_unknown_prefix_do_not_parse() {
        for key in [
            "",
            "1",
            "12",
            "thing",
            "enum1",
            "enum",
            "enum_string",
            "thing1a",
            "thing 1",
            "things1",
            "thing-1",
            "Thing1",
            "THING1",
            " thing1",
            "thing1 ",
            "thing１",
            "thing٣",
            "site01",
            "number01x",
            "phrase+1",
        ] {
            assert_eq!(parse_placeholder_key(key), None, "{key:?}");
        }
    }

    #[test]
    fn keys_with_leading_zeros_or_a_kid_over_u32_do_not_parse() {
        assert_eq!(parse_placeholder_key("thing01"), None);
        assert_eq!(parse_placeholder_key("number00"), None);
        assert_eq!(parse_placeholder_key("thing4294967296"), None);
        assert_eq!(parse_placeholder_key("thing0"), Some((Rule::Thing, 0)));
        assert_eq!(
            parse_placeholder_key("thing4294967295"),
            Some((Rule::Thing, u32::MAX))
        );
    }

    // ----- empty ----------------------------------------------------------------------

    #[test]
    fn empty_and_whitespace_only_values_are_empty_for_every_rule() {
        let blanks = [
            "",
            " ",
            "   ",
            "\t",
            "\n",
            "\r\n",
            "\u{3000}",
            " \u{3000}\t",
        ];
        let enum_values: Vec<String> = blanks.iter().map(|s| s.to_string()).collect();
        for rule in Rule::ALL {
            for value in blanks {
                assert_eq!(
                    check(rule, value, &[]),
                    Err(KeywordError::Empty),
                    "{rule} {value:?}"
                );
                // Even a template that lists a blank enum value does not make blank valid.
                assert_eq!(
                    check(rule, value, &enum_values),
                    Err(KeywordError::Empty),
                    "{rule} {value:?}"
                );
            }
        }
    }

    #[test]
    fn error_texts_are_the_tails_of_wechat_errmsg() {
        assert_eq!(KeywordError::Empty.to_string(), "is emtpy");
        assert_eq!(KeywordError::Invalid.to_string(), "invalid");
        assert_eq!(
            format!(
                "argument invalid! data.thing3.value {}",
                KeywordError::Empty
            ),
            "argument invalid! data.thing3.value is emtpy"
        );
    }

    // ----- thing / short_thing --------------------------------------------------------

    #[test]
    fn thing_accepts_twenty_ascii_characters_and_refuses_twenty_one() {
        ok(Rule::Thing, &repeat("a", 19));
        ok(Rule::Thing, &repeat("a", 20));
        invalid(Rule::Thing, &repeat("a", 21));
    }

    #[test]
    fn thing_accepts_twenty_cjk_characters_and_refuses_twenty_one() {
        ok(Rule::Thing, &repeat("汉", 19));
        ok(Rule::Thing, &repeat("汉", 20));
        invalid(Rule::Thing, &repeat("汉", 21));
    }

    #[test]
    fn thing_counts_a_single_scalar_emoji_as_one_character() {
        assert_eq!("😀".chars().count(), 1);
        ok(Rule::Thing, &repeat("😀", 19));
        ok(Rule::Thing, &repeat("😀", 20));
        invalid(Rule::Thing, &repeat("😀", 21));
    }

    #[test]
    fn thing_counts_an_emoji_with_a_skin_tone_as_two_characters() {
        assert_eq!("👍🏻".chars().count(), 2);
        ok(Rule::Thing, &repeat("👍🏻", 10));
        invalid(Rule::Thing, &format!("{}a", repeat("👍🏻", 10)));
        invalid(Rule::Thing, &repeat("👍🏻", 11));
    }

    #[test]
    fn thing_accepts_any_mix_of_chinese_digits_letters_symbols_and_spaces() {
        for value in [
            "TIT创意园",
            "广州市新港中路397号",
            "a b",
            " 前后空格 ",
            "¥9.9！😀",
            "名称",
            "~!@#",
        ] {
            ok(Rule::Thing, value);
        }
    }

    #[test]
    fn thing_refuses_control_characters() {
        for value in [
            "a\nb",
            "a\tb",
            "a\rb",
            "a\u{0}b",
            "a\u{7f}b",
            "a\u{85}b",
            "\u{1b}[0m",
        ] {
            invalid(Rule::Thing, value);
            invalid(Rule::ShortThing, value);
        }
    }

    #[test]
    fn short_thing_accepts_five_characters_and_refuses_six() {
        ok(Rule::ShortThing, "abcd");
        ok(Rule::ShortThing, "abcde");
        ok(Rule::ShortThing, "已发货啦!");
        ok(Rule::ShortThing, &repeat("😀", 5));
        invalid(Rule::ShortThing, "abcdef");
        invalid(Rule::ShortThing, &repeat("汉", 6));
    }

    // ----- number ---------------------------------------------------------------------

    #[test]
    fn number_accepts_integers_and_one_inner_decimal_point() {
        for value in ["0", "7", "007", "339208499", "3.14", "0.5", "10.0"] {
            ok(Rule::Number, value);
        }
    }

    #[test]
    fn number_accepts_thirty_two_characters_and_refuses_thirty_three() {
        ok(Rule::Number, &repeat("9", 31));
        ok(Rule::Number, &repeat("9", 32));
        invalid(Rule::Number, &repeat("9", 33));
        // The point counts as a character.
        ok(
            Rule::Number,
            &format!("{}.{}", repeat("1", 15), repeat("2", 16)),
        );
        invalid(
            Rule::Number,
            &format!("{}.{}", repeat("1", 16), repeat("2", 16)),
        );
    }

    #[test]
    fn number_refuses_signs_commas_spaces_and_dangling_points() {
        for value in [
            "-1", "+1", "1,000", "1 000", " 1", "1.", ".5", "1.2.3", "1e5", "１２", "½", "abc",
            "0x1F", "1..2",
        ] {
            invalid(Rule::Number, value);
        }
    }

    // ----- letter / symbol / character_string ----------------------------------------

    #[test]
    fn letter_accepts_thirty_two_ascii_letters_and_refuses_thirty_three() {
        ok(Rule::Letter, "A");
        ok(Rule::Letter, "HelloWorld");
        ok(Rule::Letter, &repeat("z", 32));
        invalid(Rule::Letter, &repeat("z", 33));
    }

    #[test]
    fn letter_refuses_digits_spaces_symbols_and_non_ascii_letters() {
        for value in ["abc1", "a b", "a-b", "é", "ａ", "汉", "Ω"] {
            invalid(Rule::Letter, value);
        }
    }

    #[test]
    fn symbol_accepts_five_ascii_punctuation_marks_and_refuses_six() {
        for value in ["!", "~", "-", "#$%&*", "()[]", "\"'`^_"] {
            ok(Rule::Symbol, value);
        }
        invalid(Rule::Symbol, "!!!!!!");
    }

    #[test]
    fn symbol_refuses_letters_digits_spaces_and_cjk_punctuation() {
        for value in ["a", "1", "! ", "! !", "。", "￥", "¥", "a!", "～", "…"] {
            invalid(Rule::Symbol, value);
        }
    }

    #[test]
    fn character_string_accepts_thirty_two_ascii_letters_digits_and_symbols_and_refuses_thirty_three()
     {
        ok(Rule::CharacterString, "ORDER-2024/001#A");
        ok(Rule::CharacterString, "a1!");
        ok(Rule::CharacterString, &repeat("a1!", 10)[..30]);
        ok(Rule::CharacterString, &repeat("x", 32));
        invalid(Rule::CharacterString, &repeat("x", 33));
    }

    #[test]
    fn character_string_refuses_spaces_and_non_ascii() {
        for value in ["ab c", "订单123", "é1", "ＡＢ", "a\tb", "1２3"] {
            invalid(Rule::CharacterString, value);
        }
    }

    // ----- time -----------------------------------------------------------------------

    #[test]
    fn time_accepts_clock_times_with_or_without_a_date() {
        for value in [
            "15:01",
            "9:05",
            "09:05",
            "0:00",
            "00:00",
            "23:59",
            "23:59:59",
            "9:05:00",
            "2019年10月1日 15:01",
            "2019年10月01日 15:01:30",
            "2020-08-17 20:33:09",
            "2019/10/01 15:01",
            "2019-1-1 0:00",
            "2019年10月1日   15:01",
        ] {
            ok(Rule::Time, value);
        }
    }

    #[test]
    fn time_refuses_24_00_and_out_of_range_or_badly_sized_fields() {
        for value in [
            "24:00", "25:00", "23:60", "23:59:60", "123:00", "15:1", "15:001", "15:01:1", ":15",
            "15:",
        ] {
            invalid(Rule::Time, value);
        }
    }

    #[test]
    fn time_refuses_a_date_without_a_clock_time() {
        for value in ["2019年10月1日", "2019-10-01", "2019-10-01 ", "2019/10/01"] {
            invalid(Rule::Time, value);
        }
    }

    #[test]
    fn time_accepts_a_range_joined_by_a_half_width_tilde() {
        for value in [
            "15:01~16:00",
            "15:01 ~ 16:00",
            "15:01  ~16:00",
            "2019年10月1日 15:01~2019年10月2日 16:00",
            "2019-10-01 15:01 ~ 16:00",
            "16:00~15:01",
        ] {
            ok(Rule::Time, value);
        }
    }

    #[test]
    fn time_refuses_a_range_joined_by_a_full_width_tilde() {
        for value in [
            "15:01～16:00",
            "15:01 ～ 16:00",
            "2019年10月1日 15:01～2019年10月2日 16:00",
        ] {
            invalid(Rule::Time, value);
        }
    }

    #[test]
    fn time_refuses_a_range_with_a_missing_side_or_more_than_two_points() {
        for value in [
            "15:01~",
            "~16:00",
            "~",
            "15:01~16:00~17:00",
            "15:01~~16:00",
            "15:01~2019-10-01",
        ] {
            invalid(Rule::Time, value);
        }
    }

    #[test]
    fn time_refuses_outer_spaces_glued_dates_and_full_width_digits_or_colons() {
        for value in [
            " 15:01",
            "15:01 ",
            "2019年10月1日15:01",
            "2019-10-01T15:01",
            "15：01",
            "１５:01",
            "15.01",
            "下午3:01",
            "3:01 PM",
        ] {
            invalid(Rule::Time, value);
        }
    }

    #[test]
    fn time_checks_the_date_part_too() {
        ok(Rule::Time, "2024-02-29 10:00");
        invalid(Rule::Time, "2023-02-29 10:00");
        invalid(Rule::Time, "2019-13-01 10:00");
    }

    // ----- date -----------------------------------------------------------------------

    #[test]
    fn date_accepts_chinese_dash_and_slash_forms_with_or_without_leading_zeros() {
        for value in [
            "2019年10月1日",
            "2015年01月05日",
            "2019年1月5日",
            "2019-10-01",
            "2019-1-5",
            "2019/10/01",
            "2019/1/5",
        ] {
            ok(Rule::Date, value);
        }
    }

    #[test]
    fn date_accepts_a_date_followed_by_a_clock_time() {
        for value in [
            "2019年10月1日 15:01",
            "2019-12-25 09:42",
            "2020-08-17 20:33:09",
            "2019/1/5  9:05",
        ] {
            ok(Rule::Date, value);
        }
    }

    #[test]
    fn date_accepts_the_leap_day_of_2024_and_refuses_that_of_2023() {
        ok(Rule::Date, "2024-02-29");
        ok(Rule::Date, "2024年2月29日");
        invalid(Rule::Date, "2023-02-29");
        invalid(Rule::Date, "2023年2月29日");
        ok(Rule::Date, "2000-02-29");
        invalid(Rule::Date, "1900-02-29");
        invalid(Rule::Date, "2024-02-30");
    }

    #[test]
    fn date_refuses_impossible_months_and_days() {
        for value in [
            "2019-13-01",
            "2019-00-10",
            "2019-04-31",
            "2019-01-32",
            "2019-01-00",
            "2019年6月31日",
        ] {
            invalid(Rule::Date, value);
        }
        ok(Rule::Date, "2019-12-31");
        ok(Rule::Date, "2019-04-30");
    }

    #[test]
    fn date_refuses_mixed_separators_short_years_and_partial_dates() {
        for value in [
            "2019-10/01",
            "19-10-01",
            "20190-01-01",
            "2019年10月",
            "2019年10月1",
            "2019年10-1日",
            "2019.10.01",
            "2019-10",
            "2019-010-01",
            "2019-10-01 24:00",
            "2019-10-01T10:00",
            "2019-10-0115:01",
            "2019-10-01 ",
            " 2019-10-01",
            "二〇一九年十月一日",
        ] {
            invalid(Rule::Date, value);
        }
    }

    #[test]
    fn date_refuses_a_bare_clock_time() {
        invalid(Rule::Date, "15:01");
        invalid(Rule::Date, "15:01~16:00");
    }

    #[test]
    fn date_accepts_a_range_joined_by_a_half_width_tilde() {
        for value in [
            "2019年10月1日~2019年10月7日",
            "2019-10-01 ~ 2019-10-07",
            "2019-10-01 09:00~2019-10-01 18:00",
            "2019/10/01~2019年10月7日",
        ] {
            ok(Rule::Date, value);
        }
    }

    #[test]
    fn date_refuses_a_range_joined_by_a_full_width_tilde() {
        for value in ["2019年10月1日～2019年10月7日", "2019-10-01 ～ 2019-10-07"] {
            invalid(Rule::Date, value);
        }
    }

    #[test]
    fn date_refuses_a_range_with_a_missing_side_or_more_than_two_points() {
        for value in [
            "2019-10-01~",
            "~2019-10-01",
            "2019-10-01~2019-10-02~2019-10-03",
            "2019-10-01~15:00",
        ] {
            invalid(Rule::Date, value);
        }
    }

    // ----- amount ---------------------------------------------------------------------

    #[test]
    fn amount_accepts_the_official_example_and_each_currency_form() {
        for value in [
            "¥214.00",
            "￥5",
            "$0.5",
            "€10",
            "£3.25",
            "214",
            "0",
            "99.5元",
            "¥99.5元",
            "100元",
            "0.01",
        ] {
            ok(Rule::Amount, value);
        }
    }

    #[test]
    fn amount_accepts_ten_digits_and_refuses_eleven() {
        for value in ["1234567890", "12345678.90", "¥1234567890元", "123456789.5"] {
            ok(Rule::Amount, value);
        }
        for value in [
            "12345678901",
            "123456789.01",
            "¥12345678901",
            "1234567890.5",
        ] {
            invalid(Rule::Amount, value);
        }
    }

    #[test]
    fn amount_refuses_commas_signs_and_malformed_numbers() {
        for value in [
            "¥1,000", "1,000", "-5", "+5", "¥-5", "5.", ".5", "¥.5", "5.123", "5.1.2", "¥¥5",
            "5元元", "元", "¥", "¥元", "¥ 5", "5 元", "US$5", "5¥", "RMB5", "５", "5e3", "5块",
        ] {
            invalid(Rule::Amount, value);
        }
    }

    // ----- phone_number ---------------------------------------------------------------

    #[test]
    fn phone_number_accepts_the_official_example_and_common_forms() {
        for value in [
            "+86-0766-66888866",
            "13800138000",
            "(020) 8888 8888",
            "110",
            "+1 (555) 010-9999",
        ] {
            ok(Rule::PhoneNumber, value);
        }
    }

    #[test]
    fn phone_number_accepts_seventeen_characters_and_refuses_eighteen() {
        ok(Rule::PhoneNumber, &repeat("1", 17));
        ok(Rule::PhoneNumber, "+86-0766-66888866"); // exactly 17
        invalid(Rule::PhoneNumber, &repeat("1", 18));
        invalid(Rule::PhoneNumber, "+86-0766-668888666");
    }

    #[test]
    fn phone_number_refuses_letters_other_symbols_and_values_without_digits() {
        for value in [
            "+-()",
            "( )",
            "138-0013-800a",
            "138.0013",
            "１３８",
            "#123",
            "123*",
            "ext123",
            "123\t4",
        ] {
            invalid(Rule::PhoneNumber, value);
        }
    }

    // ----- car_number -----------------------------------------------------------------

    #[test]
    fn car_number_accepts_ordinary_new_energy_and_special_plates() {
        for value in [
            "粤B12345",
            "京AD12345",
            "粤A8Z88挂",
            "粤A8Z888挂",
            "京A1234学",
            "粤Z1234港",
            "粤Z1234澳",
            "沪A12345警",
            "使A12345",
            "京A12345领",
        ] {
            ok(Rule::CarNumber, value);
        }
    }

    #[test]
    fn car_number_refuses_lowercase_wrong_lengths_and_misplaced_characters() {
        for value in [
            "粤b12345",
            "粤B1234",
            "粤B1234567",
            "AB123456",
            "粤B12 345",
            "粤B１２３４５",
            "粤B挂2345",
            "粤B12345挂挂",
            "粤·B12345",
            "粤B-12345",
            "粤",
        ] {
            invalid(Rule::CarNumber, value);
        }
    }

    // ----- name -----------------------------------------------------------------------

    #[test]
    fn name_accepts_ten_chinese_characters_and_refuses_eleven() {
        ok(Rule::Name, "张三");
        ok(Rule::Name, &repeat("王", 9));
        ok(Rule::Name, &repeat("王", 10));
        invalid(Rule::Name, &repeat("王", 11));
    }

    #[test]
    fn name_counts_mixed_chinese_and_letters_or_middle_dots_as_chinese() {
        for value in ["阿卜杜拉·买买提", "张San", "李Lee", "王a", "张Sanxxxxxx"] {
            ok(Rule::Name, value);
        }
        // 11 characters: fine as letters, too long once a Chinese character is in it.
        invalid(Rule::Name, "张Sanxxxxxxx");
        invalid(Rule::Name, "阿卜杜拉·买买提·艾力");
    }

    #[test]
    fn name_accepts_twenty_latin_characters_with_name_symbols_and_refuses_twenty_one() {
        for value in [
            "John Smith",
            "O'Brien",
            "Jean-Luc Picard",
            "J. R. R. Tolkien",
            "Ali·Khan",
            "x",
        ] {
            ok(Rule::Name, value);
        }
        ok(Rule::Name, &repeat("a", 20));
        invalid(Rule::Name, &repeat("a", 21));
        ok(Rule::Name, "Maximilian Alexander"); // 20
        invalid(Rule::Name, "Maximilian Alexanders"); // 21
    }

    #[test]
    fn name_refuses_digits_other_symbols_and_values_without_letters() {
        for value in [
            "张三1",
            "John2",
            "John_Smith",
            "John@",
            "张三!",
            "张 三",
            "张-三",
            "---",
            "·",
            ". '",
            "Zoë",
        ] {
            invalid(Rule::Name, value);
        }
    }

    // ----- phrase ---------------------------------------------------------------------

    #[test]
    fn phrase_accepts_five_chinese_characters_and_refuses_six() {
        ok(Rule::Phrase, "配送中");
        ok(Rule::Phrase, "已");
        ok(Rule::Phrase, "五个汉字啊");
        invalid(Rule::Phrase, "六个汉字啊啊");
    }

    #[test]
    fn phrase_refuses_letters_digits_punctuation_and_spaces() {
        for value in [
            "配送中!",
            "配送中。",
            "配送 中",
            "ok",
            "配送1",
            "配·送",
            "ｏｋ",
        ] {
            invalid(Rule::Phrase, value);
        }
    }

    // ----- enum -----------------------------------------------------------------------

    #[test]
    fn enum_accepts_only_exact_members_of_the_list() {
        let values = vec![
            "客厅".to_string(),
            "餐厅".to_string(),
            "设备发生故障，导致工作异常，请及时查看".to_string(),
        ];
        assert_eq!(check(Rule::Enum, "客厅", &values), Ok(()));
        assert_eq!(
            check(
                Rule::Enum,
                "设备发生故障，导致工作异常，请及时查看",
                &values
            ),
            Ok(())
        );
        for miss in ["卧室", "客厅 ", " 客厅", "客", "客厅餐厅"] {
            assert_eq!(
                check(Rule::Enum, miss, &values),
                Err(KeywordError::Invalid),
                "{miss:?}"
            );
        }
        assert_eq!(check(Rule::Enum, "客厅", &[]), Err(KeywordError::Invalid));
    }

    #[test]
    fn enum_values_are_ignored_by_every_other_rule() {
        let values = vec!["not a number".to_string()];
        assert_eq!(
            check(Rule::Number, "not a number", &values),
            Err(KeywordError::Invalid)
        );
        assert_eq!(check(Rule::Thing, "hello", &values), Ok(()));
    }

    // ----- shared pieces --------------------------------------------------------------

    #[test]
    fn cjk_ideograph_covers_the_four_blocks_and_nothing_just_outside_them() {
        for c in [
            '\u{4E00}',
            '\u{9FFF}',
            '\u{3400}',
            '\u{4DBF}',
            '\u{F900}',
            '\u{FAFF}',
            '\u{20000}',
            '\u{2FA1F}',
            '汉',
            '𠀀',
        ] {
            assert!(is_cjk_ideograph(c), "{:X}", c as u32);
        }
        for c in [
            '\u{4DFF}',
            '\u{A000}',
            '\u{33FF}',
            '\u{F8FF}',
            '\u{FB00}',
            '\u{1FFFF}',
            '\u{2FA20}',
            '。',
            '·',
            '〇',
            'a',
            '1',
            '😀',
        ] {
            assert!(!is_cjk_ideograph(c), "{:X}", c as u32);
        }
    }

    #[test]
    fn every_rule_refuses_a_value_far_over_its_limit() {
        let long_enum = repeat("甲", 10_000);
        for rule in Rule::ALL {
            for value in [
                repeat("1", 10_000),
                repeat("汉", 10_000),
                repeat("2024-02-29 10:00~", 500),
            ] {
                assert_eq!(
                    check(rule, &value, &[]),
                    Err(KeywordError::Invalid),
                    "{rule}"
                );
            }
        }
        // Enum has no length limit of its own: the list decides.
        assert_eq!(
            check(Rule::Enum, &long_enum, std::slice::from_ref(&long_enum)),
            Ok(())
        );
    }

    /// A tiny deterministic generator, so the test needs no seed plumbing and is reproducible.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn no_rule_panics_on_generated_input_and_blank_is_always_empty() {
        let pool: Vec<char> =
            "0123456789:~～年月日-/ .·'¥￥$€£元+()aZ汉粤挂\n\t\u{3000}😀👍🏻\u{0}é１"
                .chars()
                .collect();
        let enum_values = vec!["客厅".to_string(), "1".to_string()];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = rng.below(24);
            let value: String = (0..len).map(|_| pool[rng.below(pool.len())]).collect();
            let blank = value.trim().is_empty();
            for rule in Rule::ALL {
                let result = check(rule, &value, &enum_values);
                assert_eq!(
                    result == Err(KeywordError::Empty),
                    blank,
                    "{rule} {value:?}"
                );
                if result.is_ok()
                    && rule != Rule::Thing
                    && rule != Rule::ShortThing
                    && rule != Rule::Enum
                {
                    // Only thing-like rules take control characters or whitespace at the edges.
                    assert!(!value.chars().any(char::is_control), "{rule} {value:?}");
                }
                if result.is_ok() && matches!(rule, Rule::Time | Rule::Date) {
                    assert!(!value.contains('～'), "{rule} {value:?}");
                    assert!(value.matches('~').count() <= 1, "{rule} {value:?}");
                }
            }
        }
    }
}
