//! `weft:step/log`: messages a step writes to its run record, capped per step.

use wasmtime::component::{HasData, Linker};

use super::bindings::weft::step::log;
use weft_model::records::{LogLevel, LogLine};

/// Most messages one step execution may log; later ones are counted, not kept.
pub const MAX_LINES: usize = 1000;
/// Most bytes one message may have; longer ones are cut.
pub const MAX_LINE_BYTES: usize = 8 << 10;
/// Most bytes of messages one step execution may log in all.
pub const MAX_TOTAL_BYTES: usize = 1 << 20;

/// The log of one step execution.
#[derive(Debug, Default)]
pub struct StepLog {
    /// The lines kept.
    pub lines: Vec<LogLine>,
    bytes: usize,
    /// How many lines were dropped because a cap was reached.
    pub dropped: usize,
}

impl StepLog {
    fn push(&mut self, level: LogLevel, mut message: String) {
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" … [cut]");
        }
        if self.lines.len() >= MAX_LINES || self.bytes + message.len() > MAX_TOTAL_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine { level, message });
    }

    /// Records a line the step wrote to stdout or stderr.
    pub(crate) fn push_stdio(&mut self, stream: &str, line: &str) {
        let level = if stream == "stderr" {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        self.push(level, format!("[{stream}] {line}"));
    }

    /// The kept lines, plus a final line saying how many were dropped, if any.
    pub fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            self.lines.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "{} more log lines were dropped: a step may log {MAX_LINES} lines or {} KiB",
                    self.dropped,
                    MAX_TOTAL_BYTES >> 10
                ),
            });
        }
        self.lines
    }
}

impl log::Host for StepLog {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.push(level, message);
    }
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut StepLog;
}

/// Adds `weft:step/log` to `linker`, writing through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StepLog,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Host;

    #[test]
    fn floods_are_capped_and_counted() {
        let mut step_log = StepLog::default();
        for i in 0..MAX_LINES + 5 {
            step_log.log(log::Level::Info, format!("line {i}"));
        }
        step_log.log(log::Level::Error, "x".repeat(MAX_LINE_BYTES * 2));
        let lines = step_log.finish();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(
            lines.last().unwrap().message,
            "6 more log lines were dropped: a step may log 1000 lines or 1024 KiB"
        );
    }
}
