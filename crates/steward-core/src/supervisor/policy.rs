//! The restart policy, as pure arithmetic on the times it is given: what to
//! do after the agent exits (restart after a delay, give up on a crash loop,
//! or honour "do not restart"). No clock is read and no randomness drawn
//! here, so every rule is tested exactly.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::SupervisorSettings;

/// Exit code 78 (`EX_CONFIG` in sysexits.h): the agent says its own
/// configuration is wrong, so restarting it would only fail again.
pub const EXIT_DO_NOT_RESTART: i32 = 78;

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start it again after `delay`.
    Restart {
        /// Full-jitter backoff delay.
        delay: Duration,
    },
    /// Too many short-lived runs in the window: stop trying until a human resumes.
    CrashLoop {
        /// Short-lived exits inside the window, this one included.
        exits: u32,
    },
    /// It exited with [`EXIT_DO_NOT_RESTART`].
    DoNotRestart,
}

/// One exit, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// When it was noticed.
    pub at: Instant,
    /// How long the run lasted.
    pub uptime: Duration,
    /// How long it had been continuously healthy when it ended (zero if never).
    pub healthy_for: Duration,
    /// Exit code, if it exited on its own.
    pub code: Option<i32>,
}

/// Backoff and crash-loop memory across the runs of one daemon.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    backoff_initial: Duration,
    backoff_max: Duration,
    reset_after: Duration,
    min_uptime: Duration,
    crash_loop_exits: u32,
    crash_loop_window: Duration,
    /// Restarts since the last reset: the backoff exponent.
    attempt: u32,
    /// When recent short-lived runs ended, oldest first, inside the window.
    short_exits: VecDeque<Instant>,
}

impl RestartPolicy {
    /// A fresh policy; `min_uptime` is `[agent] min_uptime`.
    pub fn new(settings: &SupervisorSettings, min_uptime: Duration) -> Self {
        Self {
            backoff_initial: settings.backoff_initial,
            backoff_max: settings.backoff_max,
            reset_after: settings.reset_after,
            min_uptime,
            crash_loop_exits: settings.crash_loop_exits.max(1),
            crash_loop_window: settings.crash_loop_window,
            attempt: 0,
            short_exits: VecDeque::new(),
        }
    }

    /// Forgets backoff and crash history: a human started the agent again
    /// (`steward resume`, kill switch released).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.short_exits.clear();
    }

    /// Decides what follows `exit`. `jitter` is a uniform draw from `[0, 1)`.
    pub fn on_exit(&mut self, exit: Exit, jitter: f64) -> Verdict {
        if exit.code == Some(EXIT_DO_NOT_RESTART) {
            return Verdict::DoNotRestart;
        }
        if exit.healthy_for >= self.reset_after {
            self.reset();
        }
        while self.short_exits.front().is_some_and(|t| exit.at.duration_since(*t) > self.crash_loop_window) {
            self.short_exits.pop_front();
        }
        if exit.uptime < self.min_uptime {
            self.short_exits.push_back(exit.at);
            let exits = u32::try_from(self.short_exits.len()).unwrap_or(u32::MAX);
            if exits >= self.crash_loop_exits {
                return Verdict::CrashLoop { exits };
            }
        }
        let delay = self.delay(jitter);
        self.attempt = self.attempt.saturating_add(1);
        Verdict::Restart { delay }
    }

    /// Full jitter: uniform in `[0, min(max, initial * 2^attempt)]`.
    fn delay(&self, jitter: f64) -> Duration {
        let factor = 2_u32.checked_pow(self.attempt).unwrap_or(u32::MAX);
        let ceiling = self.backoff_initial.saturating_mul(factor).min(self.backoff_max);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The largest delay the next restart may get (for messages and tests).
    pub fn next_ceiling(&self) -> Duration {
        self.delay(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn policy() -> RestartPolicy {
        RestartPolicy::new(&SupervisorSettings::default(), Duration::from_secs(10))
    }

    fn exit(at: Instant, uptime_secs: u64, code: Option<i32>) -> Exit {
        Exit { at, uptime: Duration::from_secs(uptime_secs), healthy_for: Duration::ZERO, code }
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_sixty_second_cap() {
        let mut p = policy();
        let t0 = Instant::now();
        let mut ceilings = Vec::new();
        for i in 0..9 {
            // Long-lived runs: never a crash loop, only backoff.
            let v = p.on_exit(exit(t0 + Duration::from_secs(3600 * i), 30, Some(1)), 1.0);
            let Verdict::Restart { delay } = v else { panic!("{v:?}") };
            ceilings.push(delay.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn full_jitter_scales_the_ceiling() {
        let mut p = policy();
        let t0 = Instant::now();
        assert_eq!(p.on_exit(exit(t0, 30, None), 0.0), Verdict::Restart { delay: Duration::ZERO });
        assert_eq!(p.on_exit(exit(t0, 30, None), 0.5), Verdict::Restart { delay: SECOND });
        assert_eq!(p.on_exit(exit(t0, 30, None), 0.25), Verdict::Restart { delay: SECOND });
        // Out-of-range draws are clamped, never above the ceiling.
        assert_eq!(p.on_exit(exit(t0, 30, None), 7.0), Verdict::Restart { delay: 8 * SECOND });
    }

    #[test]
    fn sixty_seconds_healthy_resets_the_backoff() {
        let mut p = policy();
        let t0 = Instant::now();
        for _ in 0..5 {
            p.on_exit(exit(t0, 30, Some(1)), 1.0);
        }
        assert_eq!(p.next_ceiling(), 32 * SECOND);
        let healthy = Exit { healthy_for: Duration::from_secs(59), ..exit(t0, 120, Some(1)) };
        assert_eq!(p.on_exit(healthy, 1.0), Verdict::Restart { delay: 32 * SECOND });
        let healthy = Exit { healthy_for: Duration::from_secs(60), ..exit(t0, 120, Some(1)) };
        assert_eq!(p.on_exit(healthy, 1.0), Verdict::Restart { delay: SECOND });
    }

    #[test]
    fn five_short_exits_within_ten_minutes_are_a_crash_loop() {
        let mut p = policy();
        let t0 = Instant::now();
        for i in 0..4 {
            let v = p.on_exit(exit(t0 + Duration::from_secs(i), 0, Some(1)), 0.5);
            assert!(matches!(v, Verdict::Restart { .. }), "{v:?}");
        }
        assert_eq!(p.on_exit(exit(t0 + Duration::from_secs(5), 9, Some(1)), 0.5), Verdict::CrashLoop { exits: 5 });
    }

    #[test]
    fn short_exits_spread_over_more_than_the_window_are_not_a_loop() {
        let mut p = policy();
        let t0 = Instant::now();
        // One short exit every 3 minutes: at most 4 inside any 10 minutes.
        for i in 0..20 {
            let v = p.on_exit(exit(t0 + Duration::from_secs(180 * i), 1, Some(1)), 0.5);
            assert!(matches!(v, Verdict::Restart { .. }), "exit {i}: {v:?}");
        }
    }

    #[test]
    fn long_runs_do_not_count_towards_the_loop() {
        let mut p = policy();
        let t0 = Instant::now();
        for i in 0..4 {
            p.on_exit(exit(t0 + Duration::from_secs(i), 0, Some(1)), 0.5);
        }
        // A run of exactly min_uptime is not short.
        let v = p.on_exit(exit(t0 + Duration::from_secs(20), 10, Some(1)), 0.5);
        assert!(matches!(v, Verdict::Restart { .. }), "{v:?}");
        assert_eq!(p.on_exit(exit(t0 + Duration::from_secs(30), 0, None), 0.5), Verdict::CrashLoop { exits: 5 });
    }

    #[test]
    fn exit_78_is_never_restarted_and_reset_forgets_history() {
        let mut p = policy();
        let t0 = Instant::now();
        assert_eq!(p.on_exit(exit(t0, 0, Some(EXIT_DO_NOT_RESTART)), 0.5), Verdict::DoNotRestart);
        for i in 0..4 {
            p.on_exit(exit(t0 + Duration::from_secs(i), 0, Some(1)), 0.5);
        }
        p.reset();
        assert_eq!(p.next_ceiling(), SECOND);
        let v = p.on_exit(exit(t0 + Duration::from_secs(5), 0, Some(1)), 0.5);
        assert!(matches!(v, Verdict::Restart { .. }), "{v:?}");
    }
}
