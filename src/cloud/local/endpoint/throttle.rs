//! AWS IoT's per-connection inbound limits — 100 PUBLISH requests and
//! 512 KiB per second — as two token buckets. Pure: the caller passes the
//! clock and acts on the answer.
//!
//! Like AWS, a connection over its rate is throttled first (the shell
//! stops reading its socket until the buckets refill, so TCP pushes back
//! on the client), and disconnected only when it keeps pushing: when it
//! has been over for [`THROTTLE_GRACE_SECONDS`] without a break, or its
//! debt alone reaches that many seconds of its allowance. A client that
//! bursts now and then is slowed, never cut off.

use super::limits::THROTTLE_GRACE_SECONDS;
use std::time::Duration;
use tokio::time::Instant;

/// What the shell does after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttled {
    /// Within the limits: read on.
    No,
    /// Over: read again only at this instant.
    Until(Instant),
    /// Far over for too long: disconnect, saying why.
    Disconnect(String),
}

/// One bucket: `rate` tokens per second, holding at most one second's worth.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    /// May go negative: the debt of a client over its rate.
    tokens: f64,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate.max(1));
        Bucket { rate, tokens: rate }
    }

    fn refill(&mut self, elapsed: Duration) {
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.rate);
    }

    /// Seconds until the debt is paid (0 when there is none).
    fn debt_seconds(&self) -> f64 {
        (-self.tokens / self.rate).max(0.0)
    }
}

/// A connection's inbound throttle.
#[derive(Debug, Clone)]
pub struct Throttle {
    publishes: Bucket,
    bytes: Bucket,
    last: Instant,
    /// Since when the connection has been over its rate without a break.
    over_since: Option<Instant>,
}

impl Throttle {
    /// A throttle allowing `publishes_per_second` and `bytes_per_second`.
    pub fn new(publishes_per_second: u32, bytes_per_second: u32, now: Instant) -> Throttle {
        Throttle {
            publishes: Bucket::new(publishes_per_second),
            bytes: Bucket::new(bytes_per_second),
            last: now,
            over_since: None,
        }
    }

    /// Spends `publishes` PUBLISH requests and `bytes` bytes read at `now`.
    pub fn spend(&mut self, publishes: usize, bytes: usize, now: Instant) -> Throttled {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.publishes.refill(elapsed);
        self.bytes.refill(elapsed);
        self.publishes.tokens -= publishes as f64;
        self.bytes.tokens -= bytes as f64;
        let debt = self.publishes.debt_seconds().max(self.bytes.debt_seconds());
        if debt <= 0.0 {
            self.over_since = None;
            return Throttled::No;
        }
        let since = *self.over_since.get_or_insert(now);
        let grace = f64::from(THROTTLE_GRACE_SECONDS);
        let sustained = now.saturating_duration_since(since).as_secs_f64() > grace;
        if debt > grace || sustained {
            return Throttled::Disconnect(
                if self.publishes.debt_seconds() >= self.bytes.debt_seconds() {
                    format!(
                        "publishing faster than {} PUBLISH requests per second (AWS's per-connection limit) for over {THROTTLE_GRACE_SECONDS} s",
                        self.publishes.rate
                    )
                } else {
                    format!(
                        "sending more than {} bytes per second (AWS's per-connection limit is 512 KiB/s) for over {THROTTLE_GRACE_SECONDS} s",
                        self.bytes.rate
                    )
                },
            );
        }
        Throttled::Until(now + Duration::from_secs_f64(debt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_rate_reads_on_and_a_burst_is_throttled_not_cut() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(100, 1_000_000, t0);
        for n in 0..10 {
            let at = t0 + Duration::from_millis(100 * n);
            assert_eq!(throttle.spend(10, 100, at), Throttled::No);
        }
        // 150 at once: 50 over, half a second of debt.
        let at = t0 + Duration::from_secs(10);
        assert_eq!(
            throttle.spend(150, 100, at),
            Throttled::Until(at + Duration::from_millis(500))
        );
        // Waiting it out clears the debt.
        assert_eq!(
            throttle.spend(0, 0, at + Duration::from_millis(500)),
            Throttled::No
        );
    }

    #[test]
    fn a_flood_is_disconnected_once_its_debt_passes_the_grace() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(100, 512 * 1024, t0);
        let mut outcome = Throttled::No;
        for n in 0..100 {
            outcome = throttle.spend(50, 100, t0 + Duration::from_millis(10 * n));
            if matches!(outcome, Throttled::Disconnect(_)) {
                break;
            }
        }
        let Throttled::Disconnect(why) = outcome else {
            panic!("5,000/s for a second must disconnect: {outcome:?}");
        };
        assert!(why.contains("100 PUBLISH requests per second"), "{why}");
        // Small reads, each waited out, but never a break: cut after the grace.
        let mut steady = Throttle::new(100, 512 * 1024, t0);
        let mut at = t0;
        let mut outcome = steady.spend(150, 100, at);
        while let Throttled::Until(resume) = outcome {
            at = resume;
            outcome = steady.spend(80, 100, at);
        }
        assert!(matches!(outcome, Throttled::Disconnect(_)), "{outcome:?}");
        assert!(at > t0 + Duration::from_secs(2));
        let mut bytes = Throttle::new(100, 1000, t0);
        assert!(matches!(
            bytes.spend(1, 5000, t0),
            Throttled::Disconnect(why) if why.contains("bytes per second")
        ));
    }
}
