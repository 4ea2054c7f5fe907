//! Timing samples shared by the benchmarks.

use std::time::Duration;

/// The times measured for one contender.
#[derive(Debug)]
pub struct Samples {
    /// What was measured, for the report.
    pub name: &'static str,
    /// One entry per measured operation.
    pub times: Vec<Duration>,
}

impl Samples {
    /// No samples yet.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            times: Vec::new(),
        }
    }

    /// The `q` quantile (0.5 for the median).
    pub fn quantile(&mut self, q: f64) -> Duration {
        self.times.sort_unstable();
        let i = ((self.times.len() - 1) as f64 * q).round() as usize;
        self.times[i]
    }

    /// The mean.
    #[allow(dead_code, reason = "not every benchmark reports a mean")]
    pub fn mean(&self) -> Duration {
        self.times.iter().sum::<Duration>() / self.times.len() as u32
    }
}
