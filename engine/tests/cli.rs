//! The `weft` binary's own behaviour, without plugins: help, and errors for bad arguments.
//! (The end-to-end tests with plugins live in the `tests/` crate.)

use std::process::Command;

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env_remove("WEFT_STORE")
        .output()
        .expect("weft runs")
}

#[test]
fn help_lists_the_commands() {
    let out = weft(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["validate", "run", "runs"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn reading_runs_without_a_store_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("nothing-here");
    let out = weft(&["runs", "list", "--store", store.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("no store at"), "{text}");
    assert!(text.contains("nothing-here"), "{text}");
}

#[test]
fn a_bad_trigger_is_rejected_before_anything_runs() {
    let out = weft(&[
        "run",
        "weft.toml",
        "--instance",
        "x",
        "--trigger",
        "{not json",
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.starts_with("error: `--trigger` is not valid JSON: "),
        "{text}"
    );
}
