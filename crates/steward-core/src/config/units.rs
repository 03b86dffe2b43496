//! The small value languages of `steward.toml`: durations (`"30s"`), sizes
//! (`"100MB"`, `4096`), rate limits (`"10/hour"`), time zones
//! (`"Europe/Berlin"`, `"+02:00"`) and money ([`Usd`]).
//!
//! They are plain functions on `&str` so every section that needs one (the
//! gateway and logging today; spend, alerts and backups later) parses them the
//! same way and reports the same fix.
//!
//! Units are deliberately few and exact. A typo such as `"10/hr"` or `"5mins"`
//! is refused with the list of accepted units rather than guessed at, because a
//! silently misread limit is worse than a refused start.
//!
//! Sizes: `KB`, `MB`, `GB`, `TB` are decimal (powers of 1000, as disks and
//! network tools count), `KiB`, `MiB`, `GiB`, `TiB` are binary (powers of 1024).
//! Unit letters are case-insensitive (`mb` = `MB`); a bare integer or `B` is bytes.

use std::fmt;
use std::time::Duration;

use time::UtcOffset;

use super::model::RateLimit;

/// Units accepted by [`parse_duration`], as shown in error messages.
pub const DURATION_UNITS: &str = "ms, s, m, h, d";

/// Units accepted by [`parse_size`], as shown in error messages.
pub const SIZE_UNITS: &str = "B, KB, MB, GB, TB (x1000) and KiB, MiB, GiB, TiB (x1024)";

/// Window units accepted by [`parse_rate_limit`], as shown in error messages.
pub const RATE_UNITS: &str = "second, minute, hour, day";

/// A value that is not in the expected form. The message names the input and
/// says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not `<integer><unit>`.
    #[error("duration {input:?} is not an integer followed by a unit; write it like \"30s\" (units: {DURATION_UNITS})")]
    Duration {
        /// The text as written.
        input: String,
    },
    /// Not a byte count or `<integer><unit>`.
    #[error(
        "size {input:?} is not a byte count or an integer followed by a unit; write it like \"100MB\" (units: {SIZE_UNITS})"
    )]
    Size {
        /// The text as written.
        input: String,
    },
    /// A size written as a negative integer.
    #[error("size {value} is negative; write a byte count or a size like \"100MB\"")]
    NegativeSize {
        /// The integer as written.
        value: i64,
    },
    /// Not `N/unit`.
    #[error("limit {input:?} is not N/unit; write it like \"10/hour\" (units: {RATE_UNITS})")]
    RateLimit {
        /// The text as written.
        input: String,
    },
    /// `0/unit`: a limit that allows nothing is almost certainly a mistake.
    #[error("limit {input:?} allows no calls at all; allow at least one (like \"1/hour\") or remove the limit")]
    ZeroRateLimit {
        /// The text as written.
        input: String,
    },
    /// The number does not fit (beyond u64 bytes, u32 calls or ~584 billion years).
    #[error("{input:?} is too large; use a smaller number or a larger unit")]
    TooLarge {
        /// The text as written.
        input: String,
    },
    /// Starts like an offset but is not `+HH:MM` / `-HH:MM`.
    #[error("timezone {input:?} is not \"UTC\" or a fixed offset like \"+02:00\"")]
    UtcOffset {
        /// The text as written.
        input: String,
    },
    /// Not `UTC`, an offset, or a name in the time zone database.
    #[error(
        "timezone {input:?} is not a time zone steward knows: not an IANA name like \"Europe/Berlin\", \
         \"UTC\" or a fixed offset like \"+02:00\""
    )]
    TimeZone {
        /// The text as written.
        input: String,
    },
}

/// Parses `500ms`, `30s`, `10m`, `2h`, `7d`: a non-negative integer, optional
/// spaces, and a unit. `0s` is accepted; callers that need a positive duration
/// check it themselves (a zero timeout and a zero retry delay mean different things).
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration { input: input.to_owned() };
    let (number, unit) = split_number(input).ok_or_else(err)?;
    let number = parse_u64(number, input)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(err()),
    };
    let millis = number.checked_mul(millis_per_unit).ok_or_else(|| UnitError::TooLarge { input: input.to_owned() })?;
    Ok(Duration::from_millis(millis))
}

/// Parses a size in bytes: `4096`, `512KB`, `100MB`, `2GB`, `64KiB`, `1GiB`
/// (see the module docs for decimal vs binary units).
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size { input: input.to_owned() };
    let (number, unit) = split_number(input).ok_or_else(err)?;
    let number = parse_u64(number, input)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(err()),
    };
    number.checked_mul(multiplier).ok_or_else(|| UnitError::TooLarge { input: input.to_owned() })
}

/// A size written as a TOML integer (`max_body = 4096`): a byte count.
pub fn size_from_integer(value: i64) -> Result<u64, UnitError> {
    u64::try_from(value).map_err(|_| UnitError::NegativeSize { value })
}

/// Parses `N/unit` such as `10/hour`, `5/minute`, `100/d`. Units: `second`,
/// `minute`, `hour`, `day`, their plurals, and `s`, `m`, `h`, `d`. N must be at least 1.
pub fn parse_rate_limit(input: &str) -> Result<RateLimit, UnitError> {
    let err = || UnitError::RateLimit { input: input.to_owned() };
    let (count, unit) = input.split_once('/').ok_or_else(err)?;
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let max: u32 = count.parse().map_err(|_| UnitError::TooLarge { input: input.to_owned() })?;
    let seconds = match unit.trim() {
        "s" | "second" | "seconds" => 1,
        "m" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(err()),
    };
    if max == 0 {
        return Err(UnitError::ZeroRateLimit { input: input.to_owned() });
    }
    Ok(RateLimit { max, per: Duration::from_secs(seconds) })
}

/// Parses a time zone: an IANA name (`Europe/Berlin`, which follows daylight
/// saving time), `UTC`, or a fixed offset (see [`parse_utc_offset`]). Names
/// come from jiff's database: the system's `/usr/share/zoneinfo` (or `TZDIR`)
/// when present, else the copy compiled into steward, so a minimal host
/// without tzdata knows them too.
pub fn parse_timezone(input: &str) -> Result<jiff::tz::TimeZone, UnitError> {
    if input == "UTC" || input.starts_with(['+', '-']) {
        let offset = parse_utc_offset(input)?;
        let offset = jiff::tz::Offset::from_seconds(offset.whole_seconds())
            .map_err(|_| UnitError::UtcOffset { input: input.to_owned() })?;
        return Ok(jiff::tz::TimeZone::fixed(offset));
    }
    jiff::tz::TimeZone::get(input).map_err(|_| UnitError::TimeZone { input: input.to_owned() })
}

/// Parses `UTC` or a fixed offset `+HH:MM` / `-HH:MM` (hours 00-23, minutes
/// 00-59). A fixed offset does not follow daylight saving time: an IANA name
/// ([`parse_timezone`]) does.
pub fn parse_utc_offset(input: &str) -> Result<UtcOffset, UnitError> {
    let err = || UnitError::UtcOffset { input: input.to_owned() };
    if input == "UTC" {
        return Ok(UtcOffset::UTC);
    }
    let bytes = input.as_bytes();
    let [sign, h1, h0, b':', m1, m0] = bytes else {
        return Err(err());
    };
    let sign: i8 = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(err()),
    };
    let digit = |b: &u8| b.is_ascii_digit().then(|| (b - b'0') as i8);
    let (Some(h1), Some(h0), Some(m1), Some(m0)) = (digit(h1), digit(h0), digit(m1), digit(m0)) else {
        return Err(err());
    };
    let (hours, minutes) = (h1 * 10 + h0, m1 * 10 + m0);
    if hours > 23 || minutes > 59 {
        return Err(err());
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| err())
}

/// An amount of US dollars, held as whole micro-dollars (1 USD = 1,000,000 µUSD).
///
/// Spend is summed over thousands of calls and compared with a cap; integer
/// micro-dollars keep every sum exact where floating point would drift. A
/// price is a `Usd` per million tokens, so even the cheapest cached token
/// (a few thousand µUSD per million) is represented exactly; the cost of one
/// call is rounded up to the next whole micro-dollar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

impl Usd {
    /// No money.
    pub const ZERO: Usd = Usd(0);

    /// The largest amount a config file may write (one billion dollars): its
    /// micro-dollars stay below 2^53, so converting from the TOML float is exact
    /// to the micro-dollar.
    pub const MAX_CONFIG: Usd = Usd(1_000_000_000 * MICROS_PER_USD);

    /// `micros` micro-dollars.
    pub const fn from_micros(micros: u64) -> Usd {
        Usd(micros)
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// Dollars as written in a config file, rounded to the nearest
    /// micro-dollar. `None` for negative, non-finite or larger than
    /// [`Usd::MAX_CONFIG`] amounts.
    pub fn from_dollars(dollars: f64) -> Option<Usd> {
        let max = Usd::MAX_CONFIG.0 as f64;
        let micros = (dollars * MICROS_PER_USD as f64).round();
        if micros.is_nan() || micros < 0.0 || micros > max {
            return None;
        }
        Some(Usd(micros as u64))
    }

    /// The amount in dollars, for JSON output and arithmetic in reports.
    pub fn as_dollars(self) -> f64 {
        self.0 as f64 / MICROS_PER_USD as f64
    }

    /// Sum that stops at the largest representable amount instead of wrapping:
    /// a saturated total still refuses every call against a cap.
    pub const fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// Difference, or zero when `other` is larger.
    pub const fn saturating_sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }
}

/// Micro-dollars in one dollar.
const MICROS_PER_USD: u64 = 1_000_000;

impl fmt::Display for Usd {
    /// `$5.00`, `$0.15`, `$0.000075`: at least two decimals (how people write
    /// money), more only when the amount has them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MICROS_PER_USD;
        let fraction = format!("{:06}", self.0 % MICROS_PER_USD);
        let trimmed = fraction.trim_end_matches('0');
        let shown = if trimmed.len() < 2 { &fraction[..2] } else { trimmed };
        write!(f, "${whole}.{shown}")
    }
}

/// Splits `"  10 MB "` into `("10", "MB")`. `None` when there is no leading
/// integer or the unit is not made of letters.
fn split_number(input: &str) -> Option<(&str, &str)> {
    let text = input.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    let unit = text[digits_end..].trim_start();
    if !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((&text[..digits_end], unit))
}

/// ASCII digits into a u64; the only possible failure is overflow.
fn parse_u64(digits: &str, input: &str) -> Result<u64, UnitError> {
    digits.parse().map_err(|_| UnitError::TooLarge { input: input.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("UTC"), Ok(UtcOffset::UTC));
        assert_eq!(parse_utc_offset("+00:00"), Ok(UtcOffset::UTC));
        assert_eq!(parse_utc_offset("+02:00"), Ok(UtcOffset::from_hms(2, 0, 0).unwrap()));
        assert_eq!(parse_utc_offset("-05:30"), Ok(UtcOffset::from_hms(-5, -30, 0).unwrap()));
        assert_eq!(parse_utc_offset("+23:59"), Ok(UtcOffset::from_hms(23, 59, 0).unwrap()));
        for bad in [
            "",
            "utc",
            "Z",
            "GMT",
            "Europe/Berlin",
            "+2:00",
            "+0200",
            "02:00",
            "+24:00",
            "+02:60",
            "+02:00:00",
            " +02:00",
            "+٠٢:00",
        ] {
            let err = parse_utc_offset(bad).unwrap_err();
            assert_eq!(err, UnitError::UtcOffset { input: bad.into() }, "{bad:?}");
            assert!(err.to_string().contains("fixed offset like \"+02:00\""), "{err}");
        }
    }

    #[test]
    fn time_zones_are_iana_names_utc_or_fixed_offsets() {
        assert_eq!(parse_timezone("UTC"), Ok(jiff::tz::TimeZone::fixed(jiff::tz::Offset::UTC)));
        assert_eq!(parse_timezone("+02:00"), Ok(jiff::tz::TimeZone::fixed(jiff::tz::offset(2))));
        assert_eq!(parse_timezone("Europe/Berlin").unwrap().iana_name(), Some("Europe/Berlin"));
        assert_eq!(parse_timezone("+2"), Err(UnitError::UtcOffset { input: "+2".into() }));
        for bad in ["Mars/Olympus", "", "europe berlin"] {
            let err = parse_timezone(bad).unwrap_err();
            assert_eq!(err, UnitError::TimeZone { input: bad.into() });
            assert!(err.to_string().contains("\"Europe/Berlin\""), "{err}");
        }
    }

    #[test]
    fn usd_from_dollars_rounds_to_micros() {
        assert_eq!(Usd::from_dollars(5.0), Some(Usd::from_micros(5_000_000)));
        assert_eq!(Usd::from_dollars(0.15), Some(Usd::from_micros(150_000)));
        assert_eq!(Usd::from_dollars(0.075), Some(Usd::from_micros(75_000)));
        assert_eq!(Usd::from_dollars(0.1875), Some(Usd::from_micros(187_500)));
        assert_eq!(Usd::from_dollars(0.0000004), Some(Usd::ZERO));
        assert_eq!(Usd::from_dollars(0.0), Some(Usd::ZERO));
        assert_eq!(Usd::from_dollars(1e9), Some(Usd::MAX_CONFIG));
        for bad in [-0.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e9 + 1.0] {
            assert_eq!(Usd::from_dollars(bad), None, "{bad}");
        }
        assert!((Usd::from_micros(4_200_000).as_dollars() - 4.2).abs() < 1e-12);
    }

    #[test]
    fn usd_display() {
        for (micros, shown) in [
            (0, "$0.00"),
            (5_000_000, "$5.00"),
            (150_000, "$0.15"),
            (1_500_000, "$1.50"),
            (75, "$0.000075"),
            (1_234_567, "$1.234567"),
            (10_000, "$0.01"),
            (12_345_000_000, "$12345.00"),
        ] {
            assert_eq!(Usd::from_micros(micros).to_string(), shown);
        }
    }

    #[test]
    fn usd_saturates() {
        let max = Usd::from_micros(u64::MAX);
        assert_eq!(max.saturating_add(Usd::from_micros(1)), max);
        assert_eq!(Usd::ZERO.saturating_sub(Usd::from_micros(1)), Usd::ZERO);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration(" 5 s "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_name_the_input_and_the_units() {
        for bad in ["", "10", "s", "1.5s", "-1s", "10 minutes", "10M", "5mins", "1h30m", "ten s"] {
            let err = parse_duration(bad).unwrap_err();
            assert_eq!(err, UnitError::Duration { input: bad.to_owned() }, "{bad:?}");
            let text = err.to_string();
            assert!(text.contains(&format!("{bad:?}")), "{text}");
            assert!(text.contains("write it like \"30s\" (units: ms, s, m, h, d)"), "{text}");
        }
    }

    #[test]
    fn huge_durations_are_too_large_not_wrapped() {
        let input = format!("{}d", u64::MAX / 1_000);
        assert_eq!(parse_duration(&input), Err(UnitError::TooLarge { input: input.clone() }));
        let input = "99999999999999999999999ms";
        assert_eq!(parse_duration(input), Err(UnitError::TooLarge { input: input.to_owned() }));
    }

    #[test]
    fn sizes_decimal_and_binary() {
        assert_eq!(parse_size("4096"), Ok(4_096));
        assert_eq!(parse_size("4096B"), Ok(4_096));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("4KiB"), Ok(4_096));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("1GiB"), Ok(1_073_741_824));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("10 mb"), Ok(10_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        for bad in ["", "MB", "1.5MB", "-1", "10 M", "10 megabytes", "1 0MB", "1MB2"] {
            let err = parse_size(bad).unwrap_err();
            assert_eq!(err, UnitError::Size { input: bad.to_owned() }, "{bad:?}");
            assert!(err.to_string().contains("write it like \"100MB\""), "{err}");
        }
        let huge = "20000000TB";
        assert_eq!(parse_size(huge), Err(UnitError::TooLarge { input: huge.to_owned() }));
    }

    #[test]
    fn integer_sizes() {
        assert_eq!(size_from_integer(4096), Ok(4096));
        assert_eq!(size_from_integer(-1), Err(UnitError::NegativeSize { value: -1 }));
    }

    #[test]
    fn rate_limits() {
        let hour = Duration::from_secs(3_600);
        assert_eq!(parse_rate_limit("10/hour"), Ok(RateLimit { max: 10, per: hour }));
        assert_eq!(parse_rate_limit("10/hours"), Ok(RateLimit { max: 10, per: hour }));
        assert_eq!(parse_rate_limit("10/h"), Ok(RateLimit { max: 10, per: hour }));
        assert_eq!(parse_rate_limit(" 10 / hour "), Ok(RateLimit { max: 10, per: hour }));
        for (text, secs) in [
            ("1/s", 1),
            ("1/second", 1),
            ("1/seconds", 1),
            ("1/m", 60),
            ("1/minute", 60),
            ("1/minutes", 60),
            ("1/d", 86_400),
            ("1/day", 86_400),
            ("1/days", 86_400),
        ] {
            assert_eq!(parse_rate_limit(text), Ok(RateLimit { max: 1, per: Duration::from_secs(secs) }));
        }
    }

    #[test]
    fn bad_rate_limits() {
        let err = parse_rate_limit("10/hr").unwrap_err();
        assert_eq!(
            err.to_string(),
            "limit \"10/hr\" is not N/unit; write it like \"10/hour\" (units: second, minute, hour, day)"
        );
        for bad in ["", "10", "/hour", "ten/hour", "-1/hour", "1.5/hour", "10/", "10/Hour", "10 per hour", "10/2h"] {
            assert_eq!(parse_rate_limit(bad), Err(UnitError::RateLimit { input: bad.to_owned() }), "{bad:?}");
        }
        assert_eq!(parse_rate_limit("0/hour"), Err(UnitError::ZeroRateLimit { input: "0/hour".into() }));
        let huge = "5000000000/hour";
        assert_eq!(parse_rate_limit(huge), Err(UnitError::TooLarge { input: huge.into() }));
    }
}
