//! Retry policy: exponential backoff with full jitter and bounded attempts.
//!
//! Full jitter (a uniformly random delay in `[0, min(cap, base·2ⁿ)]`) spreads
//! thousands of devices that were refused at the same moment, so they do not
//! come back in lockstep and hammer the endpoint again together.

use std::time::Duration;

/// How a device retries connects and requests.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// No delay exceeds this, however many attempts failed.
    pub cap: Duration,
    /// Connect attempts per step before the device gives up (the first
    /// JITP connect is refused by design, so this must be ≥ 2).
    pub max_connect_attempts: u32,
    /// Requests (CSR or ack) sent per step before the device gives up.
    pub max_request_attempts: u32,
}

impl Default for RetryPolicy {
    /// Tuned for the local cloud, where JITP completes within milliseconds;
    /// AWS needs a larger cap (seconds).
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
            max_connect_attempts: 10,
            max_request_attempts: 6,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `failures` (1 = after the first failure),
    /// drawn with full jitter from `rng`.
    pub fn delay(&self, failures: u32, rng: &mut Jitter) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.next_u64() % (nanos + 1))
    }
}

/// A tiny deterministic random source (SplitMix64): enough for jitter and
/// simulated loss, seedable so state machine tests replay exactly, and eight
/// bytes per device.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Jitter {
        Jitter { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The seed of one device of a seeded run (`fleet --seed`): the run's seed
/// mixed with the serial, so each device draws its own sequence and a run
/// is reproduced by its seed.
pub fn device_seed(run_seed: u64, serial: &str) -> u64 {
    // FNV-1a of the serial, then one generator step to spread the bits.
    let hash = serial.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Jitter::new(run_seed ^ hash).next_u64()
}

/// The generator of a device's simulated-loss decisions, apart from its
/// backoff jitter: the k-th response's fate depends on the seed and k
/// only, not on how many backoffs a busy machine caused before it.
pub fn loss_draws(seed: u64) -> Jitter {
    Jitter::new(seed ^ 0x5A5A_1055_D2A3_5EED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_ceiling_and_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            ..RetryPolicy::default()
        };
        let mut rng = Jitter::new(7);
        for failures in 1..40 {
            let ceiling = Duration::from_millis(10 * (1u64 << (failures - 1).min(20)))
                .min(Duration::from_millis(100));
            for _ in 0..50 {
                assert!(policy.delay(failures, &mut rng) <= ceiling);
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = RetryPolicy::default();
        let mut rng = Jitter::new(1);
        let delays: std::collections::HashSet<_> =
            (0..20).map(|_| policy.delay(5, &mut rng)).collect();
        assert!(delays.len() > 10, "full jitter gives distinct delays");
    }

    #[test]
    fn device_seeds_differ_by_serial_and_repeat_by_run_seed() {
        assert_eq!(device_seed(42, "A1"), device_seed(42, "A1"));
        assert_ne!(device_seed(42, "A1"), device_seed(42, "A2"));
        assert_ne!(device_seed(42, "A1"), device_seed(43, "A1"));
    }

    #[test]
    fn uniform_numbers_are_in_range() {
        let mut rng = Jitter::new(3);
        for _ in 0..1000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
