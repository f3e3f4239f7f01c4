//! Parsing of the timestamp formats found in the data sets, without a date library.
//!
//! Both formats are fixed-width ISO-8601 variants, so a hand-written parser is short, exact and
//! much faster than a general one; it is the hottest code of the Online Retail load.

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(v)
}

/// Parses `YYYY-MM-DD HH:MM[:SS[.ffffff]][+00:00]` (a `T` may replace the space) as milliseconds
/// since the Unix epoch. An offset other than UTC is applied. Returns `None` when malformed.
pub fn parse_datetime_ms(s: impl AsRef<[u8]>) -> Option<i64> {
    let b = s.as_ref();
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if b[13] != b':' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut rest = &b[16..];
    let mut second = 0;
    let mut millis = 0;
    if let Some(r) = rest.strip_prefix(b":") {
        if r.len() < 2 {
            return None;
        }
        second = digits(&r[..2])?;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix(b".") {
            let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            // Keep milliseconds; finer digits are truncated.
            let frac = &r[..n];
            let mut ms = 0;
            for i in 0..3 {
                ms = ms * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
            }
            millis = ms;
            rest = &r[n..];
        }
    }
    let offset_min: i64 = match rest {
        b"" | b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            let v = i64::from(h * 60 + m);
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_min * 60;
    Some(secs * 1000 + i64::from(millis))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_instants() {
        // Reference: `date -u -d '2010-12-01 08:26:00' +%s` prints 1291191960.
        assert_eq!(
            parse_datetime_ms("2010-12-01 08:26:00"),
            Some(1_291_191_960_000)
        );
        // `date -u -d '2019-11-24 00:00:34.762830' +%s` prints 1574553634.
        assert_eq!(
            parse_datetime_ms("2019-11-24 00:00:34.762830+00:00"),
            Some(1_574_553_634_762)
        );
        assert_eq!(
            parse_datetime_ms("2019-11-24T01:00:00+01:00"),
            Some(1_574_553_600_000)
        );
        assert_eq!(parse_datetime_ms("1970-01-01 00:00"), Some(0));
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "2010-13-01 00:00:00",
            "2011-02-29 00:00:00",
            "2010-12-01",
            "2010/12/01 08:26:00",
            "2010-12-01 24:00:00",
            "2010-12-01 08:26:00junk",
            "12/1/2010 8:26",
        ] {
            assert_eq!(parse_datetime_ms(bad), None, "{bad}");
        }
        assert!(parse_datetime_ms("2012-02-29 00:00:00").is_some());
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_ms(1_291_191_960_000), "2010-12-01 08:26:00");
    }
}
