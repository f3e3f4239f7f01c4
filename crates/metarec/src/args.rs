//! Range checks for the numbers on the command line, as clap value parsers.
//!
//! Every numeric option of every command is parsed by one of these helpers, so that a number out
//! of range is a usage error (exit status 2) worded the same way everywhere, for instance
//! `error: invalid value '1e20' for '--reward-window <REWARD_WINDOW>': must be at most 2592000
//! seconds (30 days)`, and never a panic, an overflow or a silent nonsense run further down.
//!
//! Use them as `#[arg(long, default_value_t = 1000, value_parser = args::count::<usize>(MAX_USERS))]`.
//! The type parameter must be the field's own type: clap compares the two only when the value
//! is read, and a mismatch panics there, which is why `every_command_parses_with_its_defaults`
//! in main.rs parses every subcommand once.

use std::num::IntErrorKind;

/// Seconds in a day, for the upper bounds of durations.
pub const DAY: u64 = 86_400;
/// Most users simulated or evaluated per seed or per setting (a run that size takes hours).
pub const MAX_USERS: u64 = 10_000_000;
/// Most seeds (independent repetitions) of one run.
pub const MAX_SEEDS: u64 = 10_000;
/// Most optimiser iterations, training epochs or timed repetitions of one run.
pub const MAX_ITERATIONS: u64 = 10_000_000;
/// Most worker threads.
pub const MAX_THREADS: u64 = 1024;
/// The widest layer or latent dimension (the neural policy's own limit).
pub const MAX_WIDTH: u64 = 4096;

/// A value parser as clap takes one: a function from the argument's text to the value or to the
/// reason it is refused (clap prefixes the value and the option's name).
pub trait ValueCheck<T>: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {}

impl<T, F> ValueCheck<T> for F where F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
{}

/// A count from 1 to `max`: sizes and repetitions where zero would do nothing.
pub fn count<T: TryFrom<u64>>(max: u64) -> impl ValueCheck<T> {
    whole(1, max)
}

/// A whole number from `min` to `max` (both included).
pub fn whole<T: TryFrom<u64>>(min: u64, max: u64) -> impl ValueCheck<T> {
    move |text: &str| {
        let text = text.trim();
        // i128 holds every u64 and its negation, so any number past the bounds is reported as
        // too small or too large rather than as unreadable.
        let value = match text.parse::<i128>() {
            Ok(v) => v,
            Err(e) => {
                return Err(match e.kind() {
                    IntErrorKind::PosOverflow => format!("must be at most {max}"),
                    IntErrorKind::NegOverflow => format!("must be at least {min}"),
                    _ => format!("must be a whole number from {min} to {max}"),
                });
            }
        };
        if value < i128::from(min) {
            return Err(format!("must be at least {min}"));
        }
        if value > i128::from(max) {
            return Err(format!("must be at most {max}"));
        }
        // The bounds are u64, so the value is one; it fits the field's type unless `max` does
        // not (a 64-bit bound for a usize on a 32-bit platform).
        u64::try_from(value)
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| "is too large for this platform".to_owned())
    }
}

/// The lower end of a range of real numbers.
#[derive(Clone, Copy)]
enum Low {
    /// The bound itself is allowed.
    Included(f64),
    /// Only numbers above the bound are.
    Excluded(f64),
}

/// Reads a finite number in the range, with `unit` (such as " seconds") after the bounds in the
/// messages and `note` (such as " (30 days)") after the upper one.
fn real(text: &str, low: Low, high: f64, unit: &str, note: &str) -> Result<f64, String> {
    let Ok(value) = text.trim().parse::<f64>() else {
        return Err(match low {
            Low::Included(l) => format!("must be a number from {l} to {high}{unit}{note}"),
            Low::Excluded(l) => {
                format!("must be a number greater than {l} and at most {high}{unit}{note}")
            }
        });
    };
    if value.is_nan() {
        return Err("must be a number, not NaN".to_owned());
    }
    // Infinities fail one of these comparisons, as they should: every bound is finite.
    match low {
        Low::Included(l) if value < l => return Err(format!("must be at least {l}{unit}")),
        Low::Excluded(l) if value <= l => return Err(format!("must be greater than {l}{unit}")),
        _ => {}
    }
    if value > high {
        return Err(format!("must be at most {high}{unit}{note}"));
    }
    Ok(value)
}

/// A finite number from `min` to `max` (both included): weights that may be negative or zero.
pub fn number(min: f64, max: f64) -> impl ValueCheck<f64> {
    move |text: &str| real(text, Low::Included(min), max, "", "")
}

/// A finite number greater than 0 and at most `max`: rates, scales and step sizes.
pub fn positive(max: f64) -> impl ValueCheck<f64> {
    move |text: &str| real(text, Low::Excluded(0.0), max, "", "")
}

/// A probability, or a discount: a number from 0 to 1.
pub fn probability(text: &str) -> Result<f64, String> {
    real(text, Low::Included(0.0), 1.0, "", "")
}

/// A share strictly between 0 and 1, such as the part of a log kept for training, where both
/// ends would leave one side empty.
pub fn fraction(text: &str) -> Result<f64, String> {
    let value = real(text, Low::Excluded(0.0), 1.0, "", "")?;
    if value == 1.0 {
        return Err("must be less than 1".to_owned());
    }
    Ok(value)
}

/// 0 (the feature is off) or a number from `min` to `max`, such as a request rate where 0 means
/// no rate limit: the lower bound keeps derived intervals (`1 / rate`) representable.
pub fn zero_or(min: f64, max: f64) -> impl ValueCheck<f64> {
    move |text: &str| match text.trim().parse::<f64>() {
        Ok(0.0) => Ok(0.0),
        Ok(v) if !v.is_nan() && v > 0.0 && v < min => Err(format!("must be 0 or at least {min}")),
        _ => real(text, Low::Included(min), max, "", "")
            .map_err(|e| format!("{e} (or 0 to turn it off)")),
    }
}

/// A duration in seconds, greater than 0 and at most `max` seconds, returned as seconds that
/// [`std::time::Duration::from_secs_f64`] converts without panicking and without rounding to
/// zero.
pub fn seconds(max: u64) -> impl ValueCheck<f64> {
    move |text: &str| {
        // u64 seconds up to 2^53 are exact as f64; larger bounds are not sensible durations.
        let value = real(
            text,
            Low::Excluded(0.0),
            max as f64,
            " seconds",
            &human(max),
        )?;
        match std::time::Duration::try_from_secs_f64(value) {
            Ok(d) if !d.is_zero() => Ok(value),
            _ => Err("must be at least 1 nanosecond".to_owned()),
        }
    }
}

/// ` (30 days)` for 2,592,000 seconds: a bound in seconds in the unit a person thinks in.
fn human(seconds: u64) -> String {
    let (n, unit) = match seconds {
        0 => return String::new(),
        s if s % DAY == 0 => (s / DAY, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        _ => return String::new(),
    };
    format!(" ({n} {unit}{})", if n == 1 { "" } else { "s" })
}

/// Parses a comma-separated list with `item`, for a list that is read after clap has parsed the
/// command line (because its default depends on another option); errors name the option as
/// clap's do.
pub fn list<T>(
    option: &str,
    text: &str,
    item: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<Vec<T>> {
    text.split(',')
        .map(|s| {
            item(s).map_err(|e| anyhow::anyhow!("invalid value '{}' for '{option}': {e}", s.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_checked_against_both_bounds_and_the_platform() {
        let users = count::<usize>(MAX_USERS);
        assert_eq!(users("1"), Ok(1));
        assert_eq!(users(" 10000000 "), Ok(10_000_000));
        assert_eq!(users("0"), Err("must be at least 1".to_owned()));
        assert_eq!(users("-1"), Err("must be at least 1".to_owned()));
        assert_eq!(
            users("10000001"),
            Err("must be at most 10000000".to_owned())
        );
        // Past even i128: still too large, not unreadable.
        assert_eq!(
            users("999999999999999999999999999999999999999999"),
            Err("must be at most 10000000".to_owned())
        );
        assert_eq!(
            users("-999999999999999999999999999999999999999999"),
            Err("must be at least 1".to_owned())
        );
        for bad in ["", "1.5", "1e6", "ten", "NaN"] {
            assert_eq!(
                users(bad),
                Err("must be a whole number from 1 to 10000000".to_owned()),
                "{bad}"
            );
        }
        let threads = whole::<usize>(0, MAX_THREADS);
        assert_eq!(threads("0"), Ok(0));
        assert_eq!(threads("1025"), Err("must be at most 1024".to_owned()));
        // A bound wider than the field's type refuses what the type cannot hold.
        let byte = whole::<u8>(0, 1000);
        assert_eq!(byte("255"), Ok(255));
        assert_eq!(
            byte("256"),
            Err("is too large for this platform".to_owned())
        );
    }

    #[test]
    fn real_numbers_must_be_finite_and_in_range() {
        let lr = positive(1.0);
        assert_eq!(lr("0.003"), Ok(0.003));
        assert_eq!(lr("1"), Ok(1.0));
        assert_eq!(lr("0"), Err("must be greater than 0".to_owned()));
        assert_eq!(lr("-0"), Err("must be greater than 0".to_owned()));
        assert_eq!(lr("-inf"), Err("must be greater than 0".to_owned()));
        assert_eq!(lr("1.0001"), Err("must be at most 1".to_owned()));
        assert_eq!(lr("inf"), Err("must be at most 1".to_owned()));
        assert_eq!(lr("1e400"), Err("must be at most 1".to_owned()));
        assert_eq!(lr("NaN"), Err("must be a number, not NaN".to_owned()));
        assert_eq!(
            lr("fast"),
            Err("must be a number greater than 0 and at most 1".to_owned())
        );
        let weight = number(-1e6, 1e6);
        assert_eq!(weight("-2.5"), Ok(-2.5));
        assert_eq!(
            weight("-1e308"),
            Err("must be at least -1000000".to_owned())
        );
        assert_eq!(weight("1e308"), Err("must be at most 1000000".to_owned()));
        assert_eq!(probability("0"), Ok(0.0));
        assert_eq!(probability("1"), Ok(1.0));
        assert_eq!(probability("1.5"), Err("must be at most 1".to_owned()));
        assert_eq!(probability("-0.1"), Err("must be at least 0".to_owned()));
        assert_eq!(fraction("0.5"), Ok(0.5));
        assert_eq!(fraction("1"), Err("must be less than 1".to_owned()));
        assert_eq!(fraction("0"), Err("must be greater than 0".to_owned()));
    }

    #[test]
    fn durations_fit_a_duration_and_say_their_bound_in_days() {
        let window = seconds(30 * DAY);
        assert_eq!(window("600"), Ok(600.0));
        assert_eq!(
            window("1e20"),
            Err("must be at most 2592000 seconds (30 days)".to_owned())
        );
        assert_eq!(
            window("1e16"),
            Err("must be at most 2592000 seconds (30 days)".to_owned())
        );
        assert_eq!(
            window("0"),
            Err("must be greater than 0 seconds".to_owned())
        );
        assert_eq!(
            window("soon"),
            Err("must be a number greater than 0 and at most 2592000 seconds (30 days)".to_owned())
        );
        assert_eq!(
            window("1e-300"),
            Err("must be at least 1 nanosecond".to_owned())
        );
        assert_eq!(window("nan"), Err("must be a number, not NaN".to_owned()));
        // Every accepted value converts.
        for text in ["1e-9", "0.5", "2592000"] {
            let s = window(text).unwrap();
            assert!(std::time::Duration::try_from_secs_f64(s).is_ok_and(|d| !d.is_zero()));
        }
        assert_eq!(human(3600), " (1 hour)");
        assert_eq!(human(90), "");
    }

    #[test]
    fn zero_turns_an_option_off_and_anything_else_must_be_in_range() {
        let rate = zero_or(0.01, 1e7);
        assert_eq!(rate("0"), Ok(0.0));
        assert_eq!(rate("250"), Ok(250.0));
        assert_eq!(rate("1e-300"), Err("must be 0 or at least 0.01".to_owned()));
        assert_eq!(
            rate("-1"),
            Err("must be at least 0.01 (or 0 to turn it off)".to_owned())
        );
        assert_eq!(
            rate("1e20"),
            Err("must be at most 10000000 (or 0 to turn it off)".to_owned())
        );
        assert!(rate("nan").is_err());
    }

    #[test]
    fn a_list_names_its_option_and_the_bad_item() {
        assert_eq!(
            list("--grid", "0.1, 0.3", positive(1e6)).unwrap(),
            vec![0.1, 0.3]
        );
        let e = list("--grid", "0.1,nan", positive(1e6)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'nan' for '--grid': must be a number, not NaN"
        );
        assert!(list("--grid", "", positive(1e6)).is_err());
    }
}
