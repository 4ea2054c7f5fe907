//! The `weft` command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => code,
        Err(error) => {
            // The whole chain on one line: "failed to load plugin `x`: failed to read …: No such file".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
