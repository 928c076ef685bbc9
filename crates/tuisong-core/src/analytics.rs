//! Analytics: counters per app, template and hour (kept by the store in the same
//! transactions as what they count) rolled up into a series and the funnel
//! prompt → accept → sent → delivered → clicked → converted.

use crate::clock::Millis;
use crate::policy::beijing_day_start;
use crate::store::StatRow;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    /// Beijing calendar days, like WeChat's daily numbers.
    Day,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Granularity::Hour),
            "day" => Some(Granularity::Day),
            _ => None,
        }
    }
}

/// The metrics every bucket and total reports, zero when nothing happened.
pub const METRICS: [&str; 14] = [
    "prompt_shown",
    "prompt_accepted",
    "prompt_rejected",
    "grant_given",
    "grant_consumed",
    "grant_refunded",
    "sent",
    "delivered",
    "opened",
    "converted",
    "recalled",
    "expired",
    "cancelled",
    "refused",
];

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Start of the hour or day, Unix ms.
    pub at: Millis,
    pub counts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Funnel {
    pub prompts: u64,
    pub accepted: u64,
    pub sent: u64,
    pub delivered: u64,
    pub clicked: u64,
    pub converted: u64,
    pub conversion_value: f64,
    /// accepted / prompts
    pub accept_rate: Option<f64>,
    /// delivered / sent
    pub delivery_rate: Option<f64>,
    /// clicked (opens) / delivered
    pub click_rate: Option<f64>,
    /// converted / delivered
    pub conversion_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub granularity: Granularity,
    pub from: Millis,
    pub to: Millis,
    pub series: Vec<Bucket>,
    pub totals: BTreeMap<String, u64>,
    /// Refused sends by reason (WeChat errcode).
    pub refused: BTreeMap<String, u64>,
    pub funnel: Funnel,
}

fn rate(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| (num as f64 / den as f64 * 10_000.0).round() / 10_000.0)
}

fn zeros() -> BTreeMap<String, u64> {
    METRICS.iter().map(|m| ((*m).to_owned(), 0)).collect()
}

/// Rolls counter rows up into buckets of `granularity` between `from` and `to`.
pub fn report(rows: &[StatRow], granularity: Granularity, from: Millis, to: Millis) -> Report {
    let bucket_of = |hour: Millis| match granularity {
        Granularity::Hour => hour,
        Granularity::Day => beijing_day_start(hour),
    };
    let mut series: BTreeMap<Millis, BTreeMap<String, u64>> = BTreeMap::new();
    let mut totals = zeros();
    let mut refused = BTreeMap::new();
    let mut conversion_value = 0.0;
    for r in rows {
        let (metric, reason) = match r.metric.split_once(':') {
            Some(("refused", reason)) => ("refused", Some(reason)),
            _ => (r.metric.as_str(), None),
        };
        if let Some(reason) = reason {
            *refused.entry(reason.to_owned()).or_insert(0) += r.count;
        }
        if metric == "converted" {
            conversion_value += r.value;
        }
        let b = series.entry(bucket_of(r.hour)).or_insert_with(zeros);
        *b.entry(metric.to_owned()).or_insert(0) += r.count;
        *totals.entry(metric.to_owned()).or_insert(0) += r.count;
    }
    let t = |m: &str| totals.get(m).copied().unwrap_or(0);
    let funnel = Funnel {
        prompts: t("prompt_shown"),
        accepted: t("prompt_accepted"),
        sent: t("sent"),
        delivered: t("delivered"),
        clicked: t("opened"),
        converted: t("converted"),
        conversion_value: (conversion_value * 100.0).round() / 100.0,
        accept_rate: rate(t("prompt_accepted"), t("prompt_shown")),
        delivery_rate: rate(t("delivered"), t("sent")),
        click_rate: rate(t("opened"), t("delivered")),
        conversion_rate: rate(t("converted"), t("delivered")),
    };
    Report {
        granularity,
        from,
        to,
        series: series
            .into_iter()
            .map(|(at, counts)| Bucket { at, counts })
            .collect(),
        totals,
        refused,
        funnel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hour: Millis, metric: &str, count: u64, value: f64) -> StatRow {
        StatRow {
            hour,
            template_id: "t".into(),
            metric: metric.into(),
            count,
            value,
        }
    }

    #[test]
    fn hours_roll_up_into_days_and_the_funnel_has_rates() {
        let h = 1_795_449_600_000; // Beijing midnight
        let rows = vec![
            row(h, "prompt_shown", 10, 0.0),
            row(h, "prompt_accepted", 8, 0.0),
            row(h + 3_600_000, "sent", 8, 0.0),
            row(h + 7_200_000, "delivered", 6, 0.0),
            row(h + 7_200_000, "opened", 3, 0.0),
            row(h + 7_200_000, "converted", 1, 99.5),
            row(h + 7_200_000, "refused:43101", 2, 0.0),
        ];
        let r = report(&rows, Granularity::Day, h, h + 86_400_000);
        assert_eq!(r.series.len(), 1);
        assert_eq!(r.series[0].counts["sent"], 8);
        assert_eq!(r.totals["refused"], 2);
        assert_eq!(r.refused["43101"], 2);
        assert_eq!(r.funnel.accept_rate, Some(0.8));
        assert_eq!(r.funnel.delivery_rate, Some(0.75));
        assert_eq!(r.funnel.click_rate, Some(0.5));
        assert_eq!(r.funnel.conversion_value, 99.5);
        let hourly = report(&rows, Granularity::Hour, h, h + 86_400_000);
        assert_eq!(hourly.series.len(), 3);
        assert_eq!(report(&[], Granularity::Hour, 0, 1).funnel.click_rate, None);
    }
}
