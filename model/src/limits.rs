//! Per-step limits and the units they are written in (`"5s"`, `"64 MiB"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one execution of a step may use. Each limit that trips fails the step with a message
/// naming the limit and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLimits {
    /// Wall-clock time for the whole call, host calls included.
    pub time: Duration,
    /// Linear memory the component may grow to, in bytes.
    pub memory: u64,
    /// Size of the step's result, in bytes.
    pub output: u64,
}

impl StepLimits {
    /// The largest memory limit a step may ask for; the instance pool is sized for it.
    pub const MAX_MEMORY: u64 = 1 << 30;
}

impl Default for StepLimits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(30),
            memory: 128 << 20,
            output: 16 << 20,
        }
    }
}

/// A byte count that prints itself as `64 MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (name, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {name}", self.0 / size);
            }
        }
        for (name, size) in UNITS {
            if self.0 >= size {
                return write!(f, "{:.1} {name}", self.0 as f64 / size as f64);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// A duration that prints itself as `5 s` or `250 ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.as_millis() >= 1000 && d.as_millis().is_multiple_of(1000) {
            write!(f, "{} s", d.as_secs())
        } else if d.as_secs_f64() >= 1.0 {
            write!(f, "{:.2} s", d.as_secs_f64())
        } else if d.as_micros() >= 1000 {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{} µs", d.as_micros())
        }
    }
}

/// Parses `"5s"`, `"250ms"`, `"2m"`, `"1h"` (a space before the unit is allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it like `5s`, `250ms` or `2m`"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" | "secs" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}`; use `ms`, `s`, `m`, `h` or `d`"
            ));
        }
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{text}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `"64 MiB"`, `"512KiB"`, `"1GB"`, `"1000"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it like `64 MiB` or `512 KiB`"))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}`; use `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`)"
            ));
        }
    };
    let bytes = n * scale as f64;
    if !(bytes >= 1.0 && bytes.is_finite() && bytes < u64::MAX as f64) {
        return Err(format!("`{text}` must be at least one byte"));
    }
    Ok(bytes as u64)
}

fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250 ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert_eq!(Bytes(64 << 20).to_string(), "64 MiB");
        assert_eq!(Human(Duration::from_secs(5)).to_string(), "5 s");
        assert_eq!(Human(Duration::from_millis(250)).to_string(), "250 ms");
    }
}
