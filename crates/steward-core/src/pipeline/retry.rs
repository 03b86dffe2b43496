//! Retry timing: full-jitter exponential backoff and `Retry-After` parsing.
//!
//! Whether a failure may be retried at all is decided in `forward`, from the
//! tool's retry policy; this module only says how long to wait.

use std::time::{Duration, SystemTime};

/// Upper bound of attempts per call, the first included: enough to ride out a
/// blip, few enough that a failing upstream is not hammered.
pub const MAX_ATTEMPTS: u32 = 3;

/// Backoff base: the first retry waits up to this long.
pub const BASE_DELAY: Duration = Duration::from_millis(500);

/// Longest single wait. A `Retry-After` beyond this is not waited for: the
/// upstream's answer goes back to the agent instead of holding its call open.
pub const MAX_DELAY: Duration = Duration::from_secs(20);

/// Full jitter (AWS architecture blog): a uniform wait in
/// `[0, min(MAX_DELAY, BASE_DELAY * 2^retry)]`, where `retry` is 0 for the
/// first retry. Spreads synchronized clients apart better than equal jitter.
pub fn backoff(retry: u32) -> Duration {
    let ceiling = BASE_DELAY.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX)).min(MAX_DELAY);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// Parses `Retry-After` as delta-seconds or an HTTP-date relative to `now`.
/// A date in the past means "now". Delta-seconds too large for a `u64` mean
/// "not in any time worth waiting" ([`Duration::MAX`]): the caller hands the
/// answer back instead of retrying. Unparseable values are ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_full_jitter_bounds() {
        for retry in 0..10 {
            let ceiling = BASE_DELAY.saturating_mul(1 << retry).min(MAX_DELAY);
            for _ in 0..50 {
                assert!(backoff(retry) <= ceiling);
            }
        }
        assert!(backoff(u32::MAX) <= MAX_DELAY);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// Too large to parse is "do not retry", not "unparseable, so retry
    /// three times in half a second".
    #[test]
    fn an_absurdly_long_retry_after_means_do_not_retry() {
        let now = SystemTime::UNIX_EPOCH;
        let wait = parse_retry_after("99999999999999999999", now).unwrap();
        assert!(wait > MAX_DELAY);
        assert_eq!(parse_retry_after(" 18446744073709551616 ", now), Some(Duration::MAX));
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
