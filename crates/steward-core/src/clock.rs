//! The clock helpers every module shares: wall-clock time as the Unix
//! milliseconds the store, the journal and `kv` keep, and the few ways
//! steward writes a time for people (audit timestamps, calendar days).
//!
//! Nothing here reads the clock on its own: every function takes the time
//! it formats, so callers (and tests) decide what "now" is.

use std::time::{Duration, SystemTime};

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time `ms` Unix milliseconds name (the epoch for negative ones).
pub fn from_unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `t` as RFC 3339 UTC with milliseconds, e.g. `2026-11-26T04:00:00.123Z`:
/// the timestamp of every audit record and captured output line.
pub fn format_ts(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        format_ymd(t.year(), u8::from(t.month()), t.day()),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// [`format_ts`] without its separators, e.g. `20261126T040000.123Z`: sorts
/// like it and fits in a file name.
pub fn format_ts_compact(t: SystemTime) -> String {
    format_ts(t).replace(['-', ':'], "")
}

/// `YYYY-MM-DD` (UTC) of `t`, for messages and listings.
pub fn format_day(t: SystemTime) -> String {
    let date = time::OffsetDateTime::from(t).date();
    format_ymd(date.year(), u8::from(date.month()), date.day())
}

/// `YYYY-MM-DD`: the one way steward writes a calendar day, whichever
/// calendar library computed it (spend days are local to `[spend] timezone`).
pub fn format_ymd(year: i32, month: u8, day: u8) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms_counts_from_the_epoch_and_clamps_before_it() {
        assert_eq!(unix_ms(SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_665_600_123)), 1_795_665_600_123);
        assert_eq!(unix_ms(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_ms(from_unix_ms(1_795_665_600_123)), 1_795_665_600_123);
        assert_eq!(from_unix_ms(-5), SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn timestamps_and_days_are_written_one_way() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_665_600_123);
        assert_eq!(format_ts(t), "2026-11-26T04:00:00.123Z");
        assert_eq!(format_ts_compact(t), "20261126T040000.123Z");
        assert_eq!(format_day(t), "2026-11-26");
        assert_eq!(format_ymd(987, 3, 1), "0987-03-01");
    }
}
