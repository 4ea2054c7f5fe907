//! The `weft` command line.

mod cli;

use std::process::ExitCode;

/// mimalloc rather than the C library's allocator: a run allocates and frees many small
/// buffers from several threads at once (records, JSON, instances), where glibc's malloc spent
/// a fifth of the server's time under load and grows per-thread arenas it rarely returns.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => code,
        Err(error) => {
            // The whole chain on one line: "failed to load plugin `x`: failed to read …: No such file".
            if weft::observe::logs::json() {
                tracing::error!("{error:#}");
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
