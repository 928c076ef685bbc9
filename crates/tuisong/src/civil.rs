//! Calendar time without a date crate: Unix seconds → `YYYY-MM-DD HH:MM`, for the
//! device's cards and the bench's run date.

/// `YYYY-MM-DD HH:MM` of Unix seconds already shifted to the wanted offset
/// (civil-from-days, H. Hinnant).
pub fn minute_text(secs: i64) -> String {
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::minute_text;

    #[test]
    fn dates_across_eras_and_leap_days() {
        assert_eq!(minute_text(0), "1970-01-01 00:00");
        assert_eq!(minute_text(951_782_400), "2000-02-29 00:00");
        assert_eq!(minute_text(1_795_538_700), "2026-11-24 16:45");
        assert_eq!(minute_text(-60), "1969-12-31 23:59");
    }
}
