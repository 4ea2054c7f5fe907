//! Logs through `tracing`: one line per event on stderr, as text or as JSON, filtered by
//! `WEFT_LOG` (a level such as `info`, or directives such as `weft=debug,warn`).
//!
//! The runner opens a `run` span (`run_id`, `flow`, `instance`) around each run and a `step`
//! span (`step`) around each step, so every line logged inside a run carries them: in text as
//! `run{run_id=… flow=… instance=…}:step{step=…}:`, in JSON in the `span` and `spans` fields.
//! Nothing logged carries a secret: no credential, token, webhook token or request body.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use tracing_subscriber::EnvFilter;

/// The environment variable that sets which events are logged.
pub const FILTER_VAR: &str = "WEFT_LOG";

/// How each log line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: time, level, spans, message, fields.
    #[default]
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "`{other}` is not a log format; write `text` or `json`"
            )),
        }
    }
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Starts logging to stderr in `format`, with the filter in `WEFT_LOG`, else `default_filter`.
/// Fails when `WEFT_LOG` is not a filter or when logging was started already.
pub fn init(format: LogFormat, default_filter: &str) -> anyhow::Result<()> {
    let filter = match std::env::var(FILTER_VAR) {
        Ok(directives) => EnvFilter::try_new(&directives).map_err(|e| {
            anyhow!(
                "`{FILTER_VAR}={directives}` is not a log filter ({e}); write a level such as `info`, or directives such as `weft=debug,warn`"
            )
        })?,
        Err(_) => EnvFilter::new(default_filter),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let started = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    started.map_err(|e| anyhow!("failed to start logging: {e}"))?;
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    Ok(())
}

/// Whether logs are JSON lines: then anything else written to stderr would break them, and
/// goes through `tracing` too.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_and_refuse_others_saying_which_there_are() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        let refused = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(
            refused.contains("`yaml`") && refused.contains("`json`"),
            "{refused}"
        );
    }
}
