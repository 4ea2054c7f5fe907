//! Parsers for command-line values: durability, run status, age, log format.

use std::time::Duration;

use weft::observe::logs::LogFormat;
use weft::store::{Durability, Status};

pub(super) fn parse_durability(text: &str) -> Result<Durability, String> {
    match text {
        "step" => Ok(Durability::Step),
        "run" => Ok(Durability::Run),
        "background" => Ok(Durability::Background),
        other => Err(format!(
            "`{other}` is not a durability; write `step`, `run` or `background`"
        )),
    }
}

pub(super) fn parse_status(text: &str) -> Result<Status, String> {
    text.parse()
}

pub(super) fn parse_age(text: &str) -> Result<Duration, String> {
    weft_model::limits::parse_duration(text)
}

pub(super) fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    text.parse()
}
