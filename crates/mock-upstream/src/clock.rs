//! Owns the wall-clock reads that end up in response bodies (`created`,
//! `created_at`). Nothing in the mock's behaviour depends on the clock; only
//! these informational timestamps do, as in the real APIs.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch, as OpenAI's `created` fields carry.
pub(crate) fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Now as RFC 3339 with millisecond precision (`2026-11-26T04:02:37.123Z`),
/// the way Mastodon formats `created_at`.
pub(crate) fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_millisecond(now.millisecond()).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_back() {
        let text = now_rfc3339();
        assert!(OffsetDateTime::parse(&text, &Rfc3339).is_ok(), "{text}");
        assert!(text.ends_with('Z'), "{text}");
    }
}
