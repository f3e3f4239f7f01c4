//! Parsing of the timestamp formats found in the data sets, without a date library.
//!
//! [`parse_datetime_ms`] reads the fixed-width ISO-8601 variants of the shipped data sets; a
//! hand-written parser is short, exact and much faster than a general one, and it is the hottest
//! code of the Online Retail load. [`parse_timestamp_ms`] adds what shop exports carry (epoch
//! seconds or milliseconds, a bare date, offsets without a colon), and [`TimeFormat`] reads any
//! other layout from a `strftime`-style pattern (`%m/%d/%Y %H:%M` for `12/1/2010 8:26`).

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

/// Epoch numbers below this are seconds, others milliseconds: 1e11 seconds is the year 5138,
/// while 1e11 milliseconds is March 1973, so the two readings cannot be confused for real data.
pub const EPOCH_SECONDS_BELOW: f64 = 1e11;

/// The largest epoch time accepted, in milliseconds (about the year 33,658).
const MAX_EPOCH_MS: f64 = 1e15;

/// An epoch time in seconds (below [`EPOCH_SECONDS_BELOW`] in magnitude) or milliseconds, as
/// milliseconds; `None` when not finite or beyond about the year 33,658.
pub fn epoch_ms(value: f64) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let ms = if value.abs() < EPOCH_SECONDS_BELOW {
        value * 1000.0
    } else {
        value
    };
    (ms.abs() <= MAX_EPOCH_MS).then(|| ms.round() as i64)
}

/// Reads a time as shop exports write it, as milliseconds since the epoch (UTC):
/// - a number: epoch seconds (below 1e11) or milliseconds, fractions allowed (`1291191960`,
///   `1291191960000`, `1574553634.762`);
/// - ISO 8601 as [`parse_datetime_ms`] reads it (`2011-12-09T12:50:00Z`, with an offset, or
///   without a zone, read as UTC), also with an offset without colon (`+0100`);
/// - a bare date (`2011-12-09`, midnight UTC).
///
/// Returns `None` for anything else.
pub fn parse_timestamp_ms(s: impl AsRef<[u8]>) -> Option<i64> {
    let b = s.as_ref().trim_ascii();
    let numeric = !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, &c)| c.is_ascii_digit() || c == b'.' || (i == 0 && c == b'-'));
    if numeric {
        let text = std::str::from_utf8(b).ok()?;
        return epoch_ms(text.parse::<f64>().ok()?);
    }
    if let Some(ms) = parse_datetime_ms(b) {
        return Some(ms);
    }
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let mut with_time = b.to_vec();
        with_time.extend_from_slice(b" 00:00");
        return parse_datetime_ms(&with_time);
    }
    // `+0100`: put the colon in and try again (this path runs only for times that failed above).
    let n = b.len();
    if n > 5 && matches!(b[n - 5], b'+' | b'-') && b[n - 4..].iter().all(u8::is_ascii_digit) {
        let mut fixed = b[..n - 2].to_vec();
        fixed.push(b':');
        fixed.extend_from_slice(&b[n - 2..]);
        return parse_datetime_ms(&fixed);
    }
    None
}

/// One piece of a [`TimeFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// `%Y`: a year of up to four digits.
    Year,
    /// `%y`: a two-digit year, 1969 to 2068 (POSIX's rule).
    ShortYear,
    /// `%m`: a month number, one or two digits.
    Month,
    /// `%b` or `%B`: an English month name, full or its first three letters.
    MonthName,
    /// `%d` or `%e`: a day of the month, one or two digits.
    Day,
    /// `%H`: an hour, 0 to 23.
    Hour,
    /// `%I`: an hour on the 12-hour clock, 1 to 12 (with `%p`).
    Hour12,
    /// `%M`: minutes.
    Minute,
    /// `%S`: seconds.
    Second,
    /// `%f`: a fraction of a second (digits; milliseconds are kept).
    Fraction,
    /// `%p`: `AM` or `PM`.
    AmPm,
    /// `%z`: `Z`, `+HH:MM`, `+HHMM` or `+HH`.
    Offset,
    /// One or more spaces or tabs.
    Space,
    /// A byte that must appear as is.
    Literal(u8),
}

/// A `strftime`-style pattern for reading times that are neither epoch numbers nor ISO 8601
/// (`metarec shop import --time-format`).
///
/// Supported: `%Y` `%y` `%m` `%d` `%e` `%b` `%B` `%H` `%I` `%p` `%M` `%S` `%f` `%z`, the
/// shorthands `%F` (`%Y-%m-%d`) and `%T` (`%H:%M:%S`), and `%%`. Numbers may omit leading zeros
/// (`12/1/2010 8:26` reads with `%m/%d/%Y %H:%M`); a space matches any run of spaces and tabs;
/// times without `%z` are UTC. The pattern needs a year; a missing month or day is 1 and a
/// missing time of day is midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    pattern: String,
    pieces: Vec<Piece>,
}

impl std::str::FromStr for TimeFormat {
    type Err = String;

    fn from_str(pattern: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut chars = pattern.bytes();
        while let Some(c) = chars.next() {
            if c == b'%' {
                let spec = chars
                    .next()
                    .ok_or_else(|| format!("`{pattern}` ends with a lone `%`"))?;
                match spec {
                    b'Y' => pieces.push(Piece::Year),
                    b'y' => pieces.push(Piece::ShortYear),
                    b'm' => pieces.push(Piece::Month),
                    b'b' | b'B' | b'h' => pieces.push(Piece::MonthName),
                    b'd' | b'e' => pieces.push(Piece::Day),
                    b'H' => pieces.push(Piece::Hour),
                    b'I' => pieces.push(Piece::Hour12),
                    b'M' => pieces.push(Piece::Minute),
                    b'S' => pieces.push(Piece::Second),
                    b'f' => pieces.push(Piece::Fraction),
                    b'p' => pieces.push(Piece::AmPm),
                    b'z' => pieces.push(Piece::Offset),
                    b'F' => pieces.extend([
                        Piece::Year,
                        Piece::Literal(b'-'),
                        Piece::Month,
                        Piece::Literal(b'-'),
                        Piece::Day,
                    ]),
                    b'T' => pieces.extend([
                        Piece::Hour,
                        Piece::Literal(b':'),
                        Piece::Minute,
                        Piece::Literal(b':'),
                        Piece::Second,
                    ]),
                    b'%' => pieces.push(Piece::Literal(b'%')),
                    other => {
                        return Err(format!(
                            "`%{}` in `{pattern}` is not supported (use %Y %y %m %d %e %b %B %H %I %p %M %S %f %z %F %T %%)",
                            char::from(other)
                        ));
                    }
                }
            } else if c == b' ' || c == b'\t' {
                if pieces.last() != Some(&Piece::Space) {
                    pieces.push(Piece::Space);
                }
            } else {
                pieces.push(Piece::Literal(c));
            }
        }
        if !pieces
            .iter()
            .any(|p| matches!(p, Piece::Year | Piece::ShortYear))
        {
            return Err(format!("`{pattern}` has no year (%Y or %y)"));
        }
        let hour24 = pieces.contains(&Piece::Hour);
        let hour12 = pieces.contains(&Piece::Hour12);
        let am_pm = pieces.contains(&Piece::AmPm);
        if hour12 != am_pm || (hour24 && hour12) {
            return Err(format!(
                "`{pattern}`: %I needs %p (and %H goes without them)"
            ));
        }
        Ok(TimeFormat {
            pattern: pattern.to_owned(),
            pieces,
        })
    }
}

impl std::fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pattern)
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Takes up to `max` leading digits (at least one) as a number.
fn take_digits(b: &mut &[u8], max: usize) -> Option<u32> {
    let n = b
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n == 0 {
        return None;
    }
    let v = digits(&b[..n])?;
    *b = &b[n..];
    Some(v)
}

impl TimeFormat {
    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Reads a time in this format as milliseconds since the epoch; `None` when it does not fit
    /// the pattern or names an impossible date or time.
    pub fn parse_ms(&self, s: impl AsRef<[u8]>) -> Option<i64> {
        let mut b = s.as_ref().trim_ascii();
        let (mut year, mut month, mut day) = (None, 1, 1);
        let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0);
        let mut pm = None;
        let mut offset_min: i64 = 0;
        for piece in &self.pieces {
            match *piece {
                Piece::Year => year = Some(take_digits(&mut b, 4)?),
                Piece::ShortYear => {
                    if b.len() < 2 {
                        return None;
                    }
                    let y = digits(&b[..2])?;
                    b = &b[2..];
                    year = Some(if y < 69 { 2000 + y } else { 1900 + y });
                }
                Piece::Month => month = take_digits(&mut b, 2)?,
                Piece::MonthName => {
                    let n = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                    let word = std::str::from_utf8(&b[..n]).ok()?.to_ascii_lowercase();
                    let m = MONTHS
                        .iter()
                        .position(|full| *full == word || (n == 3 && full.starts_with(&word)))?;
                    month = m as u32 + 1;
                    b = &b[n..];
                }
                Piece::Day => day = take_digits(&mut b, 2)?,
                Piece::Hour | Piece::Hour12 => hour = take_digits(&mut b, 2)?,
                Piece::Minute => minute = take_digits(&mut b, 2)?,
                Piece::Second => second = take_digits(&mut b, 2)?,
                Piece::Fraction => {
                    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
                    if n == 0 {
                        return None;
                    }
                    millis = (0..3).fold(0, |ms, i| {
                        ms * 10
                            + b.get(i)
                                .filter(|_| i < n)
                                .map_or(0, |c| u32::from(c - b'0'))
                    });
                    b = &b[n..];
                }
                Piece::AmPm => {
                    let word = b.get(..2)?;
                    pm = Some(if word.eq_ignore_ascii_case(b"pm") {
                        true
                    } else if word.eq_ignore_ascii_case(b"am") {
                        false
                    } else {
                        return None;
                    });
                    b = &b[2..];
                }
                Piece::Offset => {
                    if let Some(rest) = b.strip_prefix(b"Z") {
                        b = rest;
                        continue;
                    }
                    let sign = match b.first()? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    b = &b[1..];
                    if b.len() < 2 {
                        return None;
                    }
                    let h = digits(&b[..2])?;
                    b = &b[2..];
                    if let Some(rest) = b.strip_prefix(b":") {
                        b = rest;
                    }
                    let m = if b.len() >= 2 && b[..2].iter().all(u8::is_ascii_digit) {
                        let m = digits(&b[..2])?;
                        b = &b[2..];
                        m
                    } else {
                        0
                    };
                    if h > 23 || m > 59 {
                        return None;
                    }
                    offset_min = sign * i64::from(h * 60 + m);
                }
                Piece::Space => {
                    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
                    if n == 0 {
                        return None;
                    }
                    b = &b[n..];
                }
                Piece::Literal(c) => b = b.strip_prefix(&[c])?,
            }
        }
        if !b.is_empty() {
            return None;
        }
        if let Some(pm) = pm {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour = hour % 12 + if pm { 12 } else { 0 };
        }
        let year = year?;
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

    #[test]
    fn shop_times_read_epochs_iso_and_bare_dates() {
        let first = 1_291_191_960_000;
        assert_eq!(parse_timestamp_ms("1291191960"), Some(first));
        assert_eq!(parse_timestamp_ms("1291191960000"), Some(first));
        assert_eq!(parse_timestamp_ms(" 1291191960.5 "), Some(first + 500));
        assert_eq!(parse_timestamp_ms("2010-12-01T08:26:00Z"), Some(first));
        assert_eq!(parse_timestamp_ms("2010-12-01T09:26:00+01:00"), Some(first));
        assert_eq!(parse_timestamp_ms("2010-12-01T09:26:00+0100"), Some(first));
        assert_eq!(parse_timestamp_ms("2010-12-01 08:26"), Some(first));
        assert_eq!(
            parse_timestamp_ms("2010-12-01"),
            Some(first - (8 * 60 + 26) * 60_000)
        );
        for bad in [
            "",
            "-",
            ".",
            "1e5",
            "12/1/2010 8:26",
            "2010-13-01",
            "1.2.3",
            "nan",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad}");
        }
        assert_eq!(epoch_ms(f64::NAN), None);
        assert_eq!(epoch_ms(1e16), None);
    }

    #[test]
    fn time_formats_read_the_online_retail_export_and_others() {
        let f: TimeFormat = "%m/%d/%Y %H:%M".parse().unwrap();
        // `date -u -d '2010-12-01 08:26:00' +%s` prints 1291191960.
        assert_eq!(f.parse_ms("12/1/2010 8:26"), Some(1_291_191_960_000));
        assert_eq!(f.parse_ms("12/01/2010  08:26"), Some(1_291_191_960_000));
        assert_eq!(f.parse_ms("13/1/2010 8:26"), None);
        assert_eq!(f.parse_ms("2/29/2011 8:26"), None);
        assert_eq!(f.parse_ms("12/1/2010 8:26 junk"), None);
        assert_eq!(f.parse_ms("12/1/2010"), None);

        let f: TimeFormat = "%d %b %Y %I:%M:%S.%f %p %z".parse().unwrap();
        // 1 Dec 2010 08:26:00.250 at +01:00 is 07:26:00.250 UTC.
        assert_eq!(
            f.parse_ms("01 Dec 2010 08:26:00.25 AM +0100"),
            Some(1_291_191_960_000 - 3_600_000 + 250)
        );
        assert_eq!(
            f.parse_ms("1 december 2010 8:26:00.250 pm Z"),
            Some(1_291_191_960_000 + 12 * 3_600_000 + 250)
        );
        let f: TimeFormat = "%F %T".parse().unwrap();
        assert_eq!(f.parse_ms("2010-12-01 08:26:00"), Some(1_291_191_960_000));
        let f: TimeFormat = "%y%m%d".parse().unwrap();
        assert_eq!(f.parse_ms("101201"), Some(1_291_161_600_000));
        assert_eq!(f.to_string(), "%y%m%d");

        for bad in ["%H:%M", "%Y %q", "%Y %I:%M", "%Y %", "%Y %H %p"] {
            assert!(bad.parse::<TimeFormat>().is_err(), "{bad}");
        }
    }
}
