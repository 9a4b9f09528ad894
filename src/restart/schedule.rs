//! When staged changes apply: a cron expression evaluated in UTC, on a [`Clock`] that tests
//! control.

use chrono::{DateTime, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A UTC clock that advances with tokio's clock from a starting time: with tokio's time
/// paused, tests move both by `tokio::time::advance`.
pub struct TokioClock {
    start_utc: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_utc: DateTime<Utc>) -> Self {
        Self {
            start_utc,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.start_utc + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

/// The next time `schedule` fires strictly after `now`.
pub fn next_run(schedule: &cron::Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&now).next()
}

/// How long from `now` until `at`, never negative.
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> std::time::Duration {
    (at - now).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_daily_schedule_crosses_midnight_utc() {
        let daily = cron::Schedule::from_str("0 30 0 * * *").unwrap();
        assert_eq!(
            next_run(&daily, utc("2026-12-31T23:59:00Z")),
            Some(utc("2027-01-01T00:30:00Z"))
        );
        // Evaluated in UTC whatever offset the time was written with.
        assert_eq!(
            next_run(&daily, utc("2026-06-01T01:00:00+02:00")),
            Some(utc("2026-06-01T00:30:00Z"))
        );
    }

    #[test]
    fn the_run_at_the_exact_time_is_the_next_one() {
        let at_two = cron::Schedule::from_str("0 0 2 * * *").unwrap();
        assert_eq!(
            next_run(&at_two, utc("2026-11-24T02:00:00Z")),
            Some(utc("2026-11-25T02:00:00Z"))
        );
        assert_eq!(
            next_run(&at_two, utc("2026-11-24T01:59:59Z")),
            Some(utc("2026-11-24T02:00:00Z"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time() {
        let clock = TokioClock::starting_at(utc("2026-11-24T23:00:00Z"));
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), utc("2026-11-25T00:00:00Z"));
    }
}
