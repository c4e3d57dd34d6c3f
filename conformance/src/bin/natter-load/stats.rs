//! Fixed-size latency histogram and the server-side figures read from /proc.

use std::time::Duration;

/// Microsecond resolution to 1 ms, 10 µs to 100 ms, 1 ms to 10 s; above
/// that, the overflow bucket (the maximum is kept exactly).
const FINE: u64 = 1_000;
const MEDIUM: u64 = 100_000;
const COARSE: u64 = 10_000_000;
const BUCKETS: usize = 1_000 + 9_900 + 9_900 + 1;

/// A latency histogram that never allocates after construction.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_micros: u64,
}

impl Histogram {
    /// Returns an empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_micros: 0,
        }
    }

    /// Records one latency in microseconds.
    pub fn record(&mut self, micros: u64) {
        let index = if micros < FINE {
            micros as usize
        } else if micros < MEDIUM {
            1_000 + ((micros - FINE) / 10) as usize
        } else if micros < COARSE {
            10_900 + ((micros - MEDIUM) / 1_000) as usize
        } else {
            BUCKETS - 1
        };
        self.counts[index] += 1;
        self.total += 1;
        self.max_micros = self.max_micros.max(micros);
    }

    /// Returns how many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Returns the latency at `quantile` (0.0 to 1.0), rounded up to the
    /// largest value its bucket holds.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }

        let rank = ((self.total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(bucket_upper_micros(index).min(self.max_micros));
            }
        }
        Duration::from_micros(self.max_micros)
    }

    /// Returns the largest latency recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }
}

fn bucket_upper_micros(index: usize) -> u64 {
    let index = index as u64;
    if index < 1_000 {
        index
    } else if index < 10_900 {
        FINE + (index - 1_000) * 10 + 9
    } else if index < 20_800 {
        MEDIUM + (index - 10_900) * 1_000 + 999
    } else {
        u64::MAX
    }
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/PID/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (user + system) as f64 / clock_ticks_per_second(),
    ))
}

/// Resident memory of a process in KiB, from `/proc/PID/status`.
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Linux reports CPU time in clock ticks; USER_HZ is 100 on every
/// architecture Linux supports today.
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_right_buckets() {
        let mut histogram = Histogram::new();
        for micros in 1..=100 {
            histogram.record(micros);
        }
        histogram.record(50_000);
        assert_eq!(histogram.count(), 101);
        assert_eq!(histogram.quantile(0.5), Duration::from_micros(51));
        assert_eq!(histogram.quantile(1.0), Duration::from_micros(50_000));
        assert_eq!(histogram.max(), Duration::from_micros(50_000));
    }

    #[test]
    fn huge_latencies_land_in_overflow() {
        let mut histogram = Histogram::new();
        histogram.record(u64::MAX / 2);
        assert_eq!(
            histogram.quantile(0.99),
            Duration::from_micros(u64::MAX / 2)
        );
    }

    #[test]
    fn own_process_figures_are_readable() {
        let pid = std::process::id();
        assert!(process_rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(process_cpu(pid).is_some());
    }
}
