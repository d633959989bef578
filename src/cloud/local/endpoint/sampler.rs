//! Sampling of failures that anyone can cause without a certificate (a
//! failed TLS handshake, a refused connection): each is counted, but only
//! the first few of each kind per window get an event-log row and an info
//! log line — the next row written says how many were skipped. One peer
//! opening thousands of junk connections then costs a counter, not a
//! thousand rows. Pure: the caller passes the clock.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Rows written per kind per window.
pub const ROWS_PER_WINDOW: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Whether to record this occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// Write a row; `skipped` occurrences of this kind went unrecorded since the last row.
    Record { skipped: u64 },
    /// Count it only.
    Skip,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    recorded: u32,
    skipped: u64,
}

/// Per-kind windows.
#[derive(Debug, Default)]
pub struct Sampler {
    windows: HashMap<&'static str, Window>,
}

impl Sampler {
    /// Decides for one occurrence of `kind` at `now`.
    pub fn sample(&mut self, kind: &'static str, now: Instant) -> Sample {
        let window = self.windows.entry(kind).or_insert(Window {
            start: now,
            recorded: 0,
            skipped: 0,
        });
        if now.duration_since(window.start) >= WINDOW {
            window.start = now;
            window.recorded = 0;
        }
        if window.recorded < ROWS_PER_WINDOW {
            window.recorded += 1;
            Sample::Record {
                skipped: std::mem::take(&mut window.skipped),
            }
        } else {
            window.skipped += 1;
            Sample::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gets_a_few_rows_per_window_and_the_next_row_counts_the_rest() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        let recorded = (0..1000)
            .filter(|_| sampler.sample("tls", t0) != Sample::Skip)
            .count();
        assert_eq!(recorded, ROWS_PER_WINDOW as usize);
        // Another kind has its own window.
        assert_eq!(sampler.sample("refused", t0), Sample::Record { skipped: 0 });
        assert_eq!(
            sampler.sample("tls", t0 + WINDOW),
            Sample::Record {
                skipped: 1000 - u64::from(ROWS_PER_WINDOW)
            }
        );
        assert_eq!(
            sampler.sample("tls", t0 + WINDOW),
            Sample::Record { skipped: 0 }
        );
    }
}
