//! Input-to-frame latency, for the benchmark (`scripts/bench-tui-latency`):
//! when `JITPILOT_LATENCY_LOG` names a file, every frame drawn after a key
//! appends one line, the microseconds from the key reaching the TUI to the
//! frame written to the terminal, then the wall-clock time of the frame
//! (Unix microseconds); every key read appends `k <Unix microseconds>`, so
//! the benchmark can also time a key from the moment it was sent (which
//! includes the wait before the TUI reads it). Off (and free) otherwise.

use std::io::Write;
use std::time::Instant;

/// The environment variable naming the latency log.
pub const LATENCY_LOG_ENV: &str = "JITPILOT_LATENCY_LOG";

/// Measures from the first unanswered key to the next drawn frame.
#[derive(Debug, Default)]
pub struct LatencyProbe {
    log: Option<std::fs::File>,
    pending: Option<Instant>,
}

impl LatencyProbe {
    /// A probe writing to `$JITPILOT_LATENCY_LOG`, or a disabled one. A log
    /// that cannot be opened is reported and the TUI runs unmeasured.
    pub fn from_env() -> LatencyProbe {
        let Some(path) = std::env::var_os(LATENCY_LOG_ENV) else {
            return LatencyProbe::default();
        };
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(log) => LatencyProbe {
                log: Some(log),
                pending: None,
            },
            Err(e) => {
                tracing::warn!(path = %std::path::Path::new(&path).display(), error = %e, "latency log cannot be opened; not measuring");
                LatencyProbe::default()
            }
        }
    }

    /// A key arrived. Keys arriving before the next frame are answered by
    /// it, so the oldest one is timed.
    pub fn input(&mut self) {
        let Some(log) = &mut self.log else { return };
        // A failed write only loses a sample of a benchmark.
        let _ = writeln!(log, "k {}", unix_micros());
        if self.pending.is_none() {
            self.pending = Some(Instant::now());
        }
    }

    /// A frame was written to the terminal.
    pub fn frame_drawn(&mut self) {
        if let (Some(log), Some(since)) = (&mut self.log, self.pending.take()) {
            let _ = writeln!(log, "{} {}", since.elapsed().as_micros(), unix_micros());
        }
    }
}

fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_after_keys_logs_one_sample_and_frames_without_keys_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.log");
        let mut probe = LatencyProbe {
            log: Some(std::fs::File::create(&path).unwrap()),
            pending: None,
        };
        probe.frame_drawn();
        probe.input();
        probe.input();
        probe.frame_drawn();
        probe.frame_drawn();
        let text = std::fs::read_to_string(&path).unwrap();
        let keys = text.lines().filter(|l| l.starts_with("k ")).count();
        let samples: Vec<Vec<u128>> = text
            .lines()
            .filter(|l| !l.starts_with("k "))
            .map(|l| l.split(' ').map(|n| n.parse().unwrap()).collect())
            .collect();
        assert_eq!(keys, 2, "{text:?}");
        assert_eq!(samples.len(), 1, "{text:?}");
        assert_eq!(samples[0].len(), 2, "{text:?}");
    }

    #[test]
    fn disabled_probe_records_nothing() {
        let mut probe = LatencyProbe::default();
        probe.input();
        assert!(probe.pending.is_none());
        probe.frame_drawn();
    }
}
