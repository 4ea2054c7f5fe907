//! The crash test as a soak: `WEFT_SOAK_CYCLES` (default 1,000) SIGKILL/restart cycles of the
//! real `weft` binary against the step acknowledgement oracle of `tests/crash.rs`. Not part of
//! CI (it takes tens of minutes); run it with `cargo bench -p weft-tests --bench crash_soak`.
//! It panics, naming the cycle and seed, at the first acknowledged step that is lost or differs.

fn main() {
    let cycles = std::env::var("WEFT_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed = std::env::var("WEFT_SOAK_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x50a4_c0de);
    let started = std::time::Instant::now();
    let report = weft_tests::crash::soak(cycles, seed);
    println!("crash soak: {report}");
    println!("took {:?}", started.elapsed());
}
