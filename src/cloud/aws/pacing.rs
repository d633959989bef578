//! Pacing device starts to what AWS IoT's registration APIs allow.
//!
//! Every JITP is a certificate registration, and AWS IoT's registration
//! APIs allow about 10 transactions per second per account. A fleet that
//! starts a thousand devices at once would be throttled (and the devices
//! would back off and retry for minutes), so `jitpilot fleet` on AWS starts
//! at most `--rate` devices per second. The local cloud has no such limit.
//!
//! The pacer hands out start times spaced `1/rate` apart (a token bucket of
//! one token, kept as the next free slot): the first start is immediate,
//! and a pacer left idle does not save up a burst.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Devices started per second on AWS unless `--rate` says otherwise: AWS
/// IoT's registration limit.
pub const DEFAULT_AWS_RATE: f64 = 10.0;

/// Why a rate was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--rate must be a number of devices per second above 0 (e.g. 10), got {0}")]
pub struct BadRate(pub f64);

/// Spaces device starts `1/rate` seconds apart. Shared by every start
/// (`&self`); time is tokio's, so tests run it on a paused clock.
#[derive(Debug)]
pub struct RegistrationPacer {
    interval: Duration,
    /// The earliest time the next start may happen.
    next_slot: Mutex<Option<Instant>>,
}

impl RegistrationPacer {
    /// A pacer allowing `rate` starts per second.
    pub fn new(rate: f64) -> Result<RegistrationPacer, BadRate> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(BadRate(rate));
        }
        // A rate so small that 1/rate overflows a Duration is refused too.
        let interval = Duration::try_from_secs_f64(1.0 / rate).map_err(|_| BadRate(rate))?;
        Ok(RegistrationPacer {
            interval,
            next_slot: Mutex::new(None),
        })
    }

    /// The spacing between two starts.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's start slot.
    pub async fn ready(&self) {
        let slot = {
            // A poisoned lock only means another caller panicked while
            // holding a plain `Option<Instant>`: still valid.
            let mut next = self
                .next_slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |at| at.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn starts_are_spaced_one_over_rate_apart() {
        let pacer = RegistrationPacer::new(10.0).expect("rate");
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..21 {
            pacer.ready().await;
            at.push(t0.elapsed());
        }
        assert_eq!(at[0], Duration::ZERO, "the first start is immediate");
        assert_eq!(at[1], Duration::from_millis(100));
        assert_eq!(at[20], Duration::from_secs(2), "21 starts take 2 s at 10/s");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_rate() {
        let pacer = Arc::new(RegistrationPacer::new(10.0).expect("rate"));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.ready().await;
                    t0.elapsed()
                })
            })
            .collect();
        let mut at = Vec::new();
        for task in tasks {
            at.push(task.await.expect("task"));
        }
        at.sort();
        let in_first_second = at.iter().filter(|d| **d < Duration::from_secs(1)).count();
        assert_eq!(in_first_second, 10, "{at:?}");
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{at:?}");
        }
        assert_eq!(at[29], Duration::from_millis(2900));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_saves_up_no_burst() {
        let pacer = RegistrationPacer::new(2.0).expect("rate");
        pacer.ready().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        pacer.ready().await;
        pacer.ready().await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(500),
            "after a pause, the second start still waits 1/rate"
        );
    }

    #[test]
    fn rates_that_make_no_sense_are_refused() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = RegistrationPacer::new(bad).expect_err("refused");
            assert!(err.to_string().contains("--rate"), "{err}");
        }
        assert_eq!(
            RegistrationPacer::new(4.0).expect("rate").interval(),
            Duration::from_millis(250)
        );
    }
}
