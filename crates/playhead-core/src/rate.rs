//! Rate limiting by GCRA (the generic cell rate algorithm), as pure arithmetic.
//!
//! A quota is `limit` units per `window_ms`. GCRA keeps one number per key, the theoretical
//! arrival time (TAT, in nanoseconds): the instant at which the key's quota would be fully
//! replenished. A request
//! of cost `c` moves the TAT forward by `c` emission intervals (`window / limit`); it is allowed
//! while the TAT stays within one window of now. One number per key, O(1), exact, and the same
//! arithmetic runs in process or as one Redis script (scale-out), so both agree.

use crate::time::Timestamp;

/// `limit` units per `window_ms`, all usable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Units per window.
    pub limit: u32,
    /// The window.
    pub window_ms: i64,
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// The request may proceed.
    pub allowed: bool,
    /// Units left in the window after this request.
    pub remaining: u32,
    /// Milliseconds until the quota is whole again.
    pub reset_ms: i64,
    /// When refused: milliseconds until a request of this cost would be allowed.
    pub retry_after_ms: i64,
}

impl Quota {
    /// The emission interval in nanoseconds (window / limit). Nanoseconds, not milliseconds: a
    /// quota above 1,000 per second has a sub-millisecond interval, and rounding it up to 1 ms
    /// would silently cap every quota at 1,000 requests per second.
    fn interval_ns(self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "windows are far below 2^53 ms")]
        let w = self.window_ms as f64 * 1e6;
        w / f64::from(self.limit.max(1))
    }

    /// The window in nanoseconds.
    pub fn window_ns(self) -> i64 {
        self.window_ms.saturating_mul(1_000_000)
    }

    /// Nanoseconds a request of `cost` moves the TAT forward. Out-of-process limiters (the Redis
    /// script) take this number from here, so they round exactly as [`gcra`] does.
    pub fn increment_ns(self, cost: u32) -> i64 {
        #[expect(clippy::cast_possible_truncation, reason = "bounded by the window times the cost")]
        let inc = (self.interval_ns() * f64::from(cost)).round() as i64;
        inc
    }
}

fn ms_up(ns: i64) -> i64 {
    (ns.max(0) + 999_999) / 1_000_000
}

/// Decide a request of `cost` at `now` given the stored TAT (nanoseconds since the epoch); returns
/// the decision and the TAT to store (unchanged when refused).
pub fn gcra(tat_ns: Option<i64>, now: Timestamp, quota: Quota, cost: u32) -> (RateDecision, i64) {
    let t = quota.interval_ns();
    let window = quota.window_ns();
    let now_ns = now.0.saturating_mul(1_000_000);
    let base = tat_ns.map_or(now_ns, |x| x.max(now_ns));
    let new_tat = base + quota.increment_ns(cost);
    let ahead = new_tat - now_ns;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "clamped to [0, limit]"
    )]
    let remaining_after =
        |ahead: i64| (((window - ahead) as f64 / t).floor().max(0.0) as u32).min(quota.limit);
    if cost > quota.limit || ahead > window {
        let current_ahead = base - now_ns;
        let decision = RateDecision {
            allowed: false,
            remaining: remaining_after(current_ahead),
            reset_ms: ms_up(current_ahead),
            retry_after_ms: if cost > quota.limit { quota.window_ms } else { ms_up(ahead - window) },
        };
        return (decision, base);
    }
    (
        RateDecision {
            allowed: true,
            remaining: remaining_after(ahead),
            reset_ms: ms_up(ahead),
            retry_after_ms: 0,
        },
        new_tat,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota { limit: 10, window_ms: 1_000 };

    fn run(n: usize, at: i64, mut tat: Option<i64>) -> (Vec<RateDecision>, Option<i64>) {
        let mut out = Vec::new();
        for _ in 0..n {
            let (d, t) = gcra(tat, Timestamp(at), Q, 1);
            tat = Some(t);
            out.push(d);
        }
        (out, tat)
    }

    #[test]
    fn a_full_quota_is_usable_at_once_then_refused() {
        let (d, _) = run(11, 0, None);
        assert!(d[..10].iter().all(|x| x.allowed));
        assert_eq!(
            d.iter().map(|x| x.remaining).take(10).collect::<Vec<_>>(),
            [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
        );
        assert!(!d[10].allowed);
        assert_eq!(d[10].retry_after_ms, 100);
        assert_eq!(d[9].reset_ms, 1_000);
    }

    #[test]
    fn the_quota_refills_at_the_emission_rate() {
        let (_, tat) = run(10, 0, None);
        let (d, _) = gcra(tat, Timestamp(99), Q, 1);
        assert!(!d.allowed);
        let (d, _) = gcra(tat, Timestamp(100), Q, 1);
        assert!(d.allowed);
        let (d, _) = gcra(tat, Timestamp(1_000), Q, 1);
        assert_eq!(d.remaining, 9);
    }

    #[test]
    fn a_refused_request_does_not_consume() {
        let (_, tat) = run(10, 0, None);
        let (d, t2) = gcra(tat, Timestamp(50), Q, 1);
        assert!(!d.allowed);
        assert_eq!(Some(t2), tat);
    }

    #[test]
    fn quotas_above_a_thousand_per_second_are_honoured() {
        // 1,000,000 per second: the interval is 1 microsecond, not rounded up to a millisecond.
        let q = Quota { limit: 1_000_000, window_ms: 1_000 };
        let mut tat = None;
        for _ in 0..10_000 {
            let (d, t) = gcra(tat, Timestamp(0), q, 1);
            assert!(d.allowed);
            tat = Some(t);
        }
        let (d, _) = gcra(tat, Timestamp(0), q, 1);
        assert_eq!(d.remaining, 989_999);
    }

    #[test]
    fn costs_above_the_limit_never_pass() {
        let (d, _) = gcra(None, Timestamp(0), Q, 11);
        assert!(!d.allowed);
        let (d, _) = gcra(None, Timestamp(0), Q, 10);
        assert!(d.allowed && d.remaining == 0);
    }

    #[test]
    fn a_client_following_retry_after_is_never_refused_twice_in_a_row() {
        let mut tat = None;
        let mut now = 0;
        for _ in 0..1_000 {
            let (d, t) = gcra(tat, Timestamp(now), Q, 1);
            if d.allowed {
                tat = Some(t);
            } else {
                now += d.retry_after_ms;
                let (d2, t2) = gcra(tat, Timestamp(now), Q, 1);
                assert!(d2.allowed);
                tat = Some(t2);
            }
        }
    }
}
