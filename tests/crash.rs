//! Crash recovery: the `weft` process is killed (SIGKILL) at random points during runs, started
//! again, and the store is checked against what the process acknowledged before it died
//! (`weft_tests::crash`; the `crash_soak` bench runs the same for 1,000 cycles).

use weft_tests::crash::soak;

#[test]
fn killed_runs_keep_every_acknowledged_step_and_resume_to_completion() {
    let report = soak(50, 0x5eed_f00d);
    // The kills must have landed inside runs often enough for this test to mean something.
    assert!(
        report.interrupted >= 10 && report.acknowledged >= 20,
        "only {} runs were interrupted and {} steps acknowledged: the kill times miss the runs (a run takes {:?}, its steps {:?})",
        report.interrupted,
        report.acknowledged,
        report.whole,
        report.steps_span
    );
    eprintln!("crash test: {report}");
}
