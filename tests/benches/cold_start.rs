//! Cold start with 10 plugins: a new engine (as a new `weft` process makes) loading ten
//! plugins, compiling them, against loading them from a warm compile cache. Interleaved, so
//! machine noise hits both alike.
//!
//! `cargo bench -p weft-tests --bench cold_start` (set `WEFT_BENCH_ROUNDS` for more or fewer).

use std::time::{Duration, Instant};

use weft::plugin::{CompileCache, HostOptions, PluginHost};
use weft_model::workspace::PluginSource;

const PLUGINS: [&str; 10] = [
    "path_helper",
    "http_get",
    "http_request",
    "s3_put_object",
    "testing_spin",
    "testing_hog",
    "testing_bloat",
    "testing_trap",
    "testing_counter",
    "testing_hostile",
];

fn start(cache: Option<CompileCache>) -> (Duration, weft::plugin::CacheStats) {
    let started = Instant::now();
    let host = PluginHost::new(HostOptions {
        compile_cache: cache,
        ..HostOptions::default()
    })
    .expect("the host starts");
    for stem in PLUGINS {
        host.load(stem, &PluginSource::File(weft_tests::plugin(stem).into()))
            .expect("the plugin loads");
    }
    (started.elapsed(), host.cache_stats())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = CompileCache::new(dir.path().join("cache"), [1; 32]);
    let (_, stats) = start(Some(cache.clone()));
    assert_eq!(stats.compiled, 10, "the first start fills the cache");

    let (mut compiled, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t, stats) = start(None);
        assert_eq!(stats.compiled, 10);
        compiled.push(t);
        let (t, stats) = start(Some(cache.clone()));
        assert_eq!((stats.compiled, stats.hits), (0, 10));
        cached.push(t);
    }
    let (c, w) = (median(compiled), median(cached));
    println!("Cold start with 10 plugins (new engine + load), median of {rounds}:");
    println!(
        "  compiling every plugin   {:>8.1} ms",
        c.as_secs_f64() * 1e3
    );
    println!(
        "  from the compile cache   {:>8.1} ms",
        w.as_secs_f64() * 1e3
    );
    println!(
        "  ratio                    {:>8.1}× faster from the cache",
        c.as_secs_f64() / w.as_secs_f64()
    );
}
