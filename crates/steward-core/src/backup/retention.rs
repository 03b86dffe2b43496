//! Which backups to keep: daily, weekly and monthly rules, decided by a pure
//! function of the backups' times (in the configured time zone), the newest
//! verified backup and the current time, so tests simulate months in
//! microseconds.
//!
//! Each rule keeps the newest backup of each of its N most recent periods
//! (calendar days, ISO weeks, months) that hold a backup, as restic and
//! borg do. On top of the rules, three backups are never deleted: the
//! newest, the newest verified one (a backup proven restorable outlives the
//! rules until a newer one is proven), and any younger than [`MIN_AGE_MS`]
//! (another process may still be verifying it).

use std::collections::BTreeSet;

use jiff::tz::TimeZone;

use crate::config::KeepPolicy;

/// Backups younger than this are never deleted (1 hour).
pub const MIN_AGE_MS: i64 = 3_600_000;

/// The decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionDecision {
    /// Backup ids to keep, newest first, with why.
    pub keep: Vec<(String, Vec<&'static str>)>,
    /// Backup ids to delete, newest first.
    pub delete: Vec<String>,
}

/// Decides which of `backups` (id, created epoch ms) to keep. `verified` holds
/// the ids that passed a verify or restore test.
pub fn decide(
    backups: &[(String, i64)],
    verified: &BTreeSet<String>,
    keep: KeepPolicy,
    tz: &TimeZone,
    now_ms: i64,
) -> RetentionDecision {
    let mut sorted: Vec<&(String, i64)> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.1, &b.0).cmp(&(a.1, &a.0)));
    let mut reasons: Vec<Vec<&'static str>> = vec![Vec::new(); sorted.len()];
    let periods: [(u32, &'static str, PeriodOf); 3] = [
        (keep.daily, "daily", |z| (i32::from(z.year()), i32::from(z.month()), i32::from(z.day()))),
        (keep.weekly, "weekly", |z| {
            let week = z.date().iso_week_date();
            (i32::from(week.year()), i32::from(week.week()), 0)
        }),
        (keep.monthly, "monthly", |z| (i32::from(z.year()), i32::from(z.month()), 0)),
    ];
    for (count, label, period_of) in periods {
        let mut seen = BTreeSet::new();
        for (i, (_, created)) in sorted.iter().enumerate() {
            if seen.len() >= usize::try_from(count).unwrap_or(usize::MAX) {
                break;
            }
            let Some(zoned) = zoned(*created, tz) else { continue };
            if seen.insert(period_of(&zoned)) {
                reasons[i].push(label);
            }
        }
    }
    if let Some(first) = reasons.first_mut() {
        first.push("newest");
    }
    if let Some(i) = sorted.iter().position(|(id, _)| verified.contains(id)) {
        reasons[i].push("newest verified");
    }
    for (i, (_, created)) in sorted.iter().enumerate() {
        if now_ms.saturating_sub(*created) < MIN_AGE_MS {
            reasons[i].push("recent");
        }
    }
    let mut decision = RetentionDecision { keep: Vec::new(), delete: Vec::new() };
    for ((id, _), why) in sorted.into_iter().zip(reasons) {
        if why.is_empty() {
            decision.delete.push(id.clone());
        } else {
            decision.keep.push((id.clone(), why));
        }
    }
    decision
}

/// The period (day, ISO week or month) a time falls in, as a sortable key.
type PeriodOf = fn(&jiff::Zoned) -> (i32, i32, i32);

/// `ms` as a time in `tz`.
fn zoned(ms: i64, tz: &TimeZone) -> Option<jiff::Zoned> {
    jiff::Timestamp::from_millisecond(ms).ok().map(|t| t.to_zoned(tz.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn at(date: &str) -> i64 {
        date.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn keeps_newest_per_day_and_never_the_newest_or_verified() {
        let t = at("2026-11-02T03:00:00Z");
        let backups: Vec<(String, i64)> =
            vec![("a".into(), t), ("b".into(), t + 3_600_000), ("c".into(), t + DAY), ("d".into(), t + 2 * DAY)];
        let keep = KeepPolicy { daily: 2, weekly: 0, monthly: 0 };
        let d = decide(&backups, &BTreeSet::new(), keep, &TimeZone::UTC, t + 10 * DAY);
        assert_eq!(d.delete, vec!["b".to_owned(), "a".to_owned()]);
        let verified: BTreeSet<String> = ["a".to_owned()].into();
        let d = decide(&backups, &verified, keep, &TimeZone::UTC, t + 10 * DAY);
        assert_eq!(d.delete, vec!["b".to_owned()]);
        assert!(d.keep.iter().any(|(id, why)| id == "a" && why.contains(&"newest verified")));
    }

    #[test]
    fn recent_backups_survive() {
        let t = at("2026-11-02T03:00:00Z");
        let backups: Vec<(String, i64)> = vec![("a".into(), t), ("b".into(), t + 1000)];
        let keep = KeepPolicy { daily: 1, weekly: 0, monthly: 0 };
        let d = decide(&backups, &BTreeSet::new(), keep, &TimeZone::UTC, t + 2000);
        assert!(d.delete.is_empty());
    }
}
