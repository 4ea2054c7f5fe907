//! Per-step cost of the Path Helper written in Rust (the built-in), JavaScript on QuickJS and on
//! SpiderMonkey, and Python (the example's `path-helper.js` / `path_helper.py`, built here with
//! `weft build`'s builder):
//! a fresh store + instance of the component and a call of `run`, compile cached, interleaved
//! in rounds so that machine noise hits all three alike. Ratios are to the Rust step.
//!
//! A Node.js `vm` context per execution (how a JavaScript flow engine runs a function node) is
//! measured in the same rounds as a reference. Needs Node.js, componentize-js and
//! componentize-py (`plugins/code-tools/install`).
//! `cargo bench -p weft --bench code_steps` (`WEFT_BENCH_ROUNDS` for a shorter or longer run,
//! `WEFT_BENCH_ONLY=rust|quickjs|spidermonkey|python|node` to build and time one contender alone,
//! for profiling it with `perf`).

#[path = "common/samples.rs"]
mod samples;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use samples::Samples;
use weft::build::JsEngine;
use weft::host::config::ConfigVars;
use weft::plugin::{HostOptions, PluginHost, StepCall};
use weft_model::limits::StepLimits;
use weft_model::value::Val;
use weft_model::workspace::PluginSource;

const BATCH: usize = 100;

/// The same Path Helper run the way a Node.js flow engine runs a function node: a fresh
/// `vm` context per execution (not a security boundary), timed inside one `node` process per
/// batch so that starting Node is not counted.
const NODE_VM: &str = r#"
const vm = require('node:vm');
const code = "(async ({ configVars }, params) => ({ data: { pokemonUrl: `${params.api_base.replace(/\\/+$/, '')}/${configVars.pokemonAvatar}`, s3ObjectPath: `${configVars.customerName}.png` } }))";
const configVars = { customerName: 'FTL Rockets', pokemonAvatar: 'onix' };
const params = { api_base: 'https://pokeapi.co/api/v2/pokemon' };
(async () => {
  const times = [];
  for (let i = 0; i < Number(process.argv[1]); i++) {
    const t = process.hrtime.bigint();
    const run = vm.runInNewContext(code, {});
    const { data } = await run({ configVars }, params);
    times.push(process.hrtime.bigint() - t);
    if (!data.pokemonUrl.endsWith('/onix')) throw new Error('wrong result');
  }
  console.log(times.join('\n'));
})();
"#;

/// One batch of the Node.js `vm` contender, in nanoseconds per execution.
fn node_vm_batch() -> anyhow::Result<Vec<std::time::Duration>> {
    let out = std::process::Command::new("node")
        .args(["-e", NODE_VM, &BATCH.to_string()])
        .output()
        .map_err(|e| anyhow::anyhow!("failed to start `node` for the Node.js contender: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "the Node.js contender failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| Ok(std::time::Duration::from_nanos(l.trim().parse()?)))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pokemon-avatar-sync");
    for file in [
        "path-helper.js",
        "path_helper.py",
        "path-helper.plugin.toml",
        "path_helper.plugin.toml",
    ] {
        std::fs::copy(example.join(file), dir.path().join(file))?;
    }
    let only = std::env::var("WEFT_BENCH_ONLY").ok();
    let wanted = |key: &str| only.as_deref().is_none_or(|o| o == key);
    let mut sources = Vec::new();
    if wanted("rust") {
        sources.push((
            "Rust (built-in)",
            PluginSource::Builtin("path-helper".into()),
        ));
    }
    for (key, name, file, engine, out) in [
        (
            "quickjs",
            "JavaScript (QuickJS)",
            "path-helper.js",
            JsEngine::QuickJs,
            "path-helper-qjs.wasm",
        ),
        (
            "spidermonkey",
            "JavaScript (SpiderMonkey)",
            "path-helper.js",
            JsEngine::SpiderMonkey,
            "path-helper-sm.wasm",
        ),
        (
            "python",
            "Python",
            "path_helper.py",
            JsEngine::default(),
            "path_helper.wasm",
        ),
    ] {
        if !wanted(key) {
            continue;
        }
        eprintln!("building {file} ({name}) ...");
        let output = dir.path().join(out);
        let built = weft::build::build(&dir.path().join(file), Some(&output), engine)?;
        eprintln!(
            "  {} ({} bytes) with {}, built in {:.2} s",
            built.output.display(),
            built.size,
            built.tool,
            built.elapsed.as_secs_f64()
        );
        sources.push((name, PluginSource::File(built.output)));
    }

    let host = Arc::new(PluginHost::new(HostOptions::default())?);
    let config: ConfigVars = [
        ("customerName".to_string(), "FTL Rockets".to_string()),
        ("pokemonAvatar".to_string(), "onix".to_string()),
    ]
    .into_iter()
    .collect();
    let inputs = vec![(
        "api_base".to_string(),
        Val::Json(serde_json::json!("https://pokeapi.co/api/v2/pokemon")),
    )];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut plugins = Vec::new();
    let mut contenders = Vec::new();
    for (name, source) in &sources {
        let t = Instant::now();
        plugins.push(host.load(name, source)?);
        eprintln!("  {name}: compiled in {:.1} s", t.elapsed().as_secs_f64());
        contenders.push(Samples::new(name));
    }
    let mut node_vm = Samples::new("Node.js vm context");
    let mut outputs = Vec::new();
    rt.block_on(async {
        let call = |plugin| {
            host.execute(
                plugin,
                StepCall {
                    step_id: "path_helper",
                    inputs: inputs.clone(),
                    config: config.clone(),
                    limits: StepLimits::default(),
                    http: None,
                    s3: None,
                    state: None,
                    concurrency: None,
                },
            )
        };
        // Warm-up: the first instantiations fault in the pool's pages.
        for plugin in &plugins {
            for _ in 0..20 {
                let outcome = call(plugin).await;
                outputs.push(format!(
                    "{:?}",
                    outcome.result.as_ref().map_err(|e| e.to_string())
                ));
            }
        }
        for round in 0..rounds {
            for (plugin, samples) in plugins.iter().zip(&mut contenders) {
                for _ in 0..BATCH {
                    let t = Instant::now();
                    let outcome = call(plugin).await;
                    samples.times.push(t.elapsed());
                    assert!(outcome.result.is_ok(), "{:?}", outcome.result.err());
                }
            }
            if wanted("node") {
                node_vm.times.extend(node_vm_batch()?);
            }
            eprint!("\rround {}/{rounds}", round + 1);
        }
        eprintln!();
        anyhow::Ok(())
    })?;
    if !node_vm.times.is_empty() {
        contenders.push(node_vm);
    }
    outputs.dedup();
    assert!(
        outputs.len() <= 1,
        "the Path Helpers disagree: {outputs:#?}"
    );

    let Some(first) = contenders.first() else {
        anyhow::bail!(
            "WEFT_BENCH_ONLY names no contender: use rust, quickjs, spidermonkey, python or node"
        );
    };
    println!(
        "per-step cost of the Path Helper, instantiate + call, compile cached ({} samples each, interleaved)",
        first.times.len()
    );
    // One contender alone (`WEFT_BENCH_ONLY`) other than Rust has nothing to compare to.
    let rust_median = wanted("rust").then(|| contenders[0].quantile(0.5));
    for s in &mut contenders {
        let (median, p99) = (s.quantile(0.5), s.quantile(0.99));
        let max = s.quantile(1.0);
        let ratio = rust_median.map_or(String::new(), |rust| {
            format!(
                "   median ratio to Rust {:>6.1}×",
                median.as_secs_f64() / rust.as_secs_f64()
            )
        });
        println!(
            "  {:<26} median {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs{ratio}",
            s.name,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}
