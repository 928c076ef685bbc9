//! Push rules: frequency caps, quiet hours and the urgent budget, as one policy per app.
//! The rules are pure functions of the policy, the clock and the message; the store only
//! counts (in the same atomic step as the send, so a refused send takes no grant and a
//! send refused for consent takes no cap).
//!
//! Windows are fixed, aligned to the epoch (per-minute, per-hour …) and the daily ones to
//! midnight Beijing time like WeChat's quotas. Time zones are fixed UTC offsets
//! ("+08:00"): mainland China has no daylight saving, and it keeps the binary free of a
//! time-zone database.

use crate::clock::Millis;
use serde::{Deserialize, Serialize};

/// A policy value out of range; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

const MINUTE: Millis = 60_000;
const DAY: Millis = 86_400_000;
const BEIJING_OFFSET: Millis = 8 * 3_600_000;

/// Which rule refused a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapRule {
    /// The app's daily volume (WeChat 45009).
    AppDaily,
    /// The app's per-minute volume (WeChat 45011).
    AppPerMinute,
    /// Messages to one user in a window (WeChat 43108).
    PerUser,
    /// Messages of one template to one user in a window (WeChat 43108).
    PerUserTemplate,
    /// The app's daily urgent budget (native API only).
    UrgentBudget,
}

impl CapRule {
    pub fn as_str(self) -> &'static str {
        match self {
            CapRule::AppDaily => "app_daily",
            CapRule::AppPerMinute => "app_per_minute",
            CapRule::PerUser => "per_user",
            CapRule::PerUserTemplate => "per_user_template",
            CapRule::UrgentBudget => "urgent_budget",
        }
    }
}

/// At most `max` messages per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    pub max: u64,
    pub window_secs: u64,
}

/// A daily window `start`..`end` (local "HH:MM" at `utc_offset`); may wrap midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    #[serde(default = "default_offset")]
    pub utc_offset: String,
}

fn default_offset() -> String {
    "+08:00".into()
}

fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn parse_offset(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let mins = parse_hhmm(rest)?;
    (mins <= 14 * 60).then_some(sign * mins)
}

impl QuietHours {
    pub fn validate(&self, key: &str) -> Result<(), PolicyError> {
        if parse_hhmm(&self.start).is_none() || parse_hhmm(&self.end).is_none() {
            return Err(PolicyError(format!(
                "{key}: start and end must be HH:MM (24-hour)"
            )));
        }
        if self.start == self.end {
            return Err(PolicyError(format!("{key}: start and end must differ")));
        }
        if parse_offset(&self.utc_offset).is_none() {
            return Err(PolicyError(format!(
                "{key}: utc_offset must look like +08:00"
            )));
        }
        Ok(())
    }

    /// When the quiet window that contains `now` ends; None when `now` is outside it.
    pub fn release_at(&self, now: Millis) -> Option<Millis> {
        let start = parse_hhmm(&self.start)?;
        let end = parse_hhmm(&self.end)?;
        let offset = parse_offset(&self.utc_offset)? * MINUTE;
        let local = now + offset;
        let day_start = local.div_euclid(DAY) * DAY;
        let minute = (local - day_start) / MINUTE;
        let inside = if start < end {
            minute >= start && minute < end
        } else {
            minute >= start || minute < end
        };
        if !inside {
            return None;
        }
        let end_today = day_start + end * MINUTE;
        let end_local = if end_today > local {
            end_today
        } else {
            end_today + DAY
        };
        Some(end_local - offset)
    }
}

/// An app's push rules. Every field has a documented default (see `Default`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Messages to one user across templates.
    pub per_user: Option<Cap>,
    /// Messages of one template to one user.
    pub per_user_template: Option<Cap>,
    /// Sends per app per day (Beijing day).
    pub app_daily: Option<u64>,
    /// Sends per app per minute.
    pub app_per_minute: Option<u64>,
    /// Non-urgent messages that arrive inside this window are held until it ends.
    pub quiet_hours: Option<QuietHours>,
    /// Urgent messages per app per day.
    pub urgent_daily_budget: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            per_user: Some(Cap {
                max: 60,
                window_secs: 3600,
            }),
            per_user_template: Some(Cap {
                max: 30,
                window_secs: 3600,
            }),
            // WeChat's volume for mini programs without payment (spec §10).
            app_daily: Some(10_000_000),
            app_per_minute: None,
            quiet_hours: None,
            urgent_daily_budget: 1000,
        }
    }
}

/// The largest count any limit may have. The stores keep counters as signed 64-bit
/// integers; a limit of 2^63 or more would turn negative there and refuse everything.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

impl Policy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (key, v) in [
            ("per_user.max", self.per_user.map(|c| c.max)),
            (
                "per_user_template.max",
                self.per_user_template.map(|c| c.max),
            ),
            ("app_daily", self.app_daily),
            ("app_per_minute", self.app_per_minute),
            ("urgent_daily_budget", Some(self.urgent_daily_budget)),
        ] {
            if v.is_some_and(|v| v > MAX_LIMIT) {
                return Err(PolicyError(format!("{key}: must be at most {MAX_LIMIT}")));
            }
        }
        for (key, cap) in [
            ("per_user", self.per_user),
            ("per_user_template", self.per_user_template),
        ] {
            if let Some(c) = cap
                && (c.max == 0 || c.window_secs == 0 || c.window_secs > 31 * 86_400)
            {
                return Err(PolicyError(format!(
                    "{key}: max must be ≥ 1 and window_secs between 1 and 2678400"
                )));
            }
        }
        for (key, v) in [
            ("app_daily", self.app_daily),
            ("app_per_minute", self.app_per_minute),
        ] {
            if v == Some(0) {
                return Err(PolicyError(format!(
                    "{key}: must be ≥ 1 or null for no limit"
                )));
            }
        }
        if let Some(q) = &self.quiet_hours {
            q.validate("quiet_hours")?;
        }
        Ok(())
    }
}

/// One counter the store must take a unit from, atomically with the send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCheck {
    pub key: String,
    pub window_start: Millis,
    pub limit: u64,
    pub rule: CapRule,
}

fn window(now: Millis, len: Millis) -> Millis {
    now.div_euclid(len) * len
}

/// The Beijing-midnight start of the day containing `now`.
pub fn beijing_day_start(now: Millis) -> Millis {
    (now + BEIJING_OFFSET).div_euclid(DAY) * DAY - BEIJING_OFFSET
}

/// The counters a send must pass. Urgent messages skip the caps and draw from the
/// urgent budget instead.
pub fn quota_checks(
    policy: &Policy,
    appid: &str,
    openid: &str,
    template_id: &str,
    urgent: bool,
    now: Millis,
) -> Vec<QuotaCheck> {
    if urgent {
        return vec![QuotaCheck {
            key: format!("urgent:{appid}"),
            window_start: beijing_day_start(now),
            limit: policy.urgent_daily_budget,
            rule: CapRule::UrgentBudget,
        }];
    }
    let mut out = Vec::with_capacity(4);
    if let Some(limit) = policy.app_daily {
        out.push(QuotaCheck {
            key: format!("app_daily:{appid}"),
            window_start: beijing_day_start(now),
            limit,
            rule: CapRule::AppDaily,
        });
    }
    if let Some(limit) = policy.app_per_minute {
        out.push(QuotaCheck {
            key: format!("app_minute:{appid}"),
            window_start: window(now, MINUTE),
            limit,
            rule: CapRule::AppPerMinute,
        });
    }
    if let Some(c) = policy.per_user {
        out.push(QuotaCheck {
            key: format!("user:{appid}:{openid}"),
            window_start: window(now, c.window_secs as i64 * 1000),
            limit: c.max,
            rule: CapRule::PerUser,
        });
    }
    if let Some(c) = policy.per_user_template {
        out.push(QuotaCheck {
            key: format!("user_tmpl:{appid}:{openid}:{template_id}"),
            window_start: window(now, c.window_secs as i64 * 1000),
            limit: c.max,
            rule: CapRule::PerUserTemplate,
        });
    }
    out
}

/// When a non-urgent message sent at `now` may be delivered: the latest end of the quiet
/// windows (the app's, the user's) that contain `now`; None when neither does.
pub fn hold_until(
    app: Option<&QuietHours>,
    user: Option<&QuietHours>,
    now: Millis,
) -> Option<Millis> {
    [app, user]
        .into_iter()
        .flatten()
        .filter_map(|q| q.release_at(now))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: &str, end: &str) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
            utc_offset: "+08:00".into(),
        }
    }

    // 2026-11-24 00:00 Beijing = 2026-11-23 16:00 UTC.
    const BJ_MIDNIGHT: Millis = 1_795_449_600_000;

    #[test]
    fn a_limit_that_would_not_fit_a_signed_counter_is_refused_with_its_key() {
        let huge = 1u64 << 63;
        let p = Policy {
            urgent_daily_budget: huge,
            ..Policy::default()
        };
        let e = p.validate().expect_err("refused");
        assert!(e.0.starts_with("urgent_daily_budget:"), "{}", e.0);
        let p = Policy {
            per_user: Some(Cap {
                max: huge,
                window_secs: 60,
            }),
            ..Policy::default()
        };
        assert!(
            p.validate()
                .expect_err("refused")
                .0
                .starts_with("per_user.max:")
        );
        let p = Policy {
            app_daily: Some(MAX_LIMIT),
            urgent_daily_budget: MAX_LIMIT,
            ..Policy::default()
        };
        assert!(
            p.validate().is_ok(),
            "the largest allowed limit is accepted"
        );
    }

    #[test]
    fn a_window_over_midnight_holds_until_its_end() {
        let w = q("22:00", "08:00");
        let at_23 = BJ_MIDNIGHT - 3_600_000;
        assert_eq!(w.release_at(at_23), Some(BJ_MIDNIGHT + 8 * 3_600_000));
        let at_3 = BJ_MIDNIGHT + 3 * 3_600_000;
        assert_eq!(w.release_at(at_3), Some(BJ_MIDNIGHT + 8 * 3_600_000));
        assert_eq!(
            w.release_at(BJ_MIDNIGHT + 8 * 3_600_000),
            None,
            "the end is outside"
        );
        assert_eq!(w.release_at(BJ_MIDNIGHT + 12 * 3_600_000), None);
    }

    #[test]
    fn a_daytime_window_holds_only_inside() {
        let w = q("12:00", "14:00");
        assert_eq!(
            w.release_at(BJ_MIDNIGHT + 13 * 3_600_000),
            Some(BJ_MIDNIGHT + 14 * 3_600_000)
        );
        assert_eq!(w.release_at(BJ_MIDNIGHT + 11 * 3_600_000), None);
    }

    #[test]
    fn the_later_of_two_windows_wins() {
        let app = q("22:00", "07:00");
        let user = q("23:00", "09:00");
        let at_1 = BJ_MIDNIGHT + 3_600_000;
        assert_eq!(
            hold_until(Some(&app), Some(&user), at_1),
            Some(BJ_MIDNIGHT + 9 * 3_600_000)
        );
        assert_eq!(hold_until(None, None, at_1), None);
    }

    #[test]
    fn bad_policies_are_refused_with_the_key() {
        let mut p = Policy::default();
        assert!(p.validate().is_ok());
        p.quiet_hours = Some(q("25:00", "08:00"));
        assert!(
            p.validate()
                .expect_err("bad")
                .to_string()
                .contains("quiet_hours")
        );
        p.quiet_hours = Some(QuietHours {
            utc_offset: "Asia/Shanghai".into(),
            ..q("22:00", "08:00")
        });
        assert!(p.validate().is_err());
        p.quiet_hours = None;
        p.per_user = Some(Cap {
            max: 0,
            window_secs: 60,
        });
        assert!(
            p.validate()
                .expect_err("bad")
                .to_string()
                .contains("per_user")
        );
    }

    #[test]
    fn urgent_sends_draw_only_from_the_budget() {
        let p = Policy::default();
        let c = quota_checks(&p, "wx1", "o1", "t1", true, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].rule, CapRule::UrgentBudget);
        let c = quota_checks(&p, "wx1", "o1", "t1", false, 0);
        assert!(c.iter().any(|c| c.rule == CapRule::PerUser));
        assert!(!c.iter().any(|c| c.rule == CapRule::UrgentBudget));
    }
}
