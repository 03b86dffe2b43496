//! Stage two for `[supervised.ready]`: the thresholds of the readiness
//! verdict that `steward report` prints and `steward graduate` requires.

use super::*;

/// Default `[supervised.ready] min_days`: the checklist's "first week".
pub const DEFAULT_READY_MIN_DAYS: u32 = 7;
/// Default `[supervised.ready] min_decisions`: enough approvals to have seen
/// the agent's usual actions, a few a day over a week.
pub const DEFAULT_READY_MIN_DECISIONS: u32 = 20;
/// Default `[supervised.ready] quiet_days`: the last denial is at least this
/// old, so the agent's latest behaviour is what a human accepted.
pub const DEFAULT_READY_QUIET_DAYS: u32 = 3;
/// Largest `min_days` and `quiet_days` (ten years): beyond is a typo.
pub const MAX_READY_DAYS: u32 = 3_650;
/// Largest `min_decisions`: beyond is a typo.
const MAX_READY_DECISIONS: u32 = 1_000_000;

impl Validator<'_> {
    /// `[supervised.ready]`; absent: the defaults.
    pub(super) fn ready(&mut self, raw: Option<RawReady>) -> ReadyThresholds {
        let ready = raw.unwrap_or_default();
        ReadyThresholds {
            min_days: self.ready_count(ready.min_days, "min_days", DEFAULT_READY_MIN_DAYS, MAX_READY_DAYS, "days"),
            min_decisions: self.ready_count(
                ready.min_decisions,
                "min_decisions",
                DEFAULT_READY_MIN_DECISIONS,
                MAX_READY_DECISIONS,
                "decisions",
            ),
            quiet_days: self.ready_count(
                ready.quiet_days,
                "quiet_days",
                DEFAULT_READY_QUIET_DAYS,
                MAX_READY_DAYS,
                "days",
            ),
        }
    }

    /// A whole number in `0..=max`, or the default (with a problem recorded).
    fn ready_count(&mut self, raw: Option<Spanned<i64>>, key: &str, default: u32, max: u32, unit: &str) -> u32 {
        let Some(value) = raw else { return default };
        match u32::try_from(*value.get_ref()) {
            Ok(n) if n <= max => n,
            _ => {
                self.push(Problem::new(
                    value.span(),
                    format!("[supervised.ready] {key} = {} is out of range", value.get_ref()),
                    "out of range",
                    format!("write a whole number of {unit} from 0 to {max}, like {key} = {default}"),
                ));
                default
            }
        }
    }
}
