//! Times as pages show them: epoch milliseconds (as stored) to `2026-05-01 14:03 UTC`, and ISO 8601 for `<time>`.

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (y, mo, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// `2026-05-01 14:03 UTC`.
pub fn display(ms: i64) -> String {
    let (y, mo, d, h, mi, _) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

/// `2026-05-01T14:03:09Z`.
pub fn iso(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_milliseconds_read_as_utc_dates() {
        assert_eq!(super::display(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::iso(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(super::display(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
