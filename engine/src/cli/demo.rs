//! `weft demo`: the Pokemon Avatar Sync example end to end, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use weft::demo::{self, PathHelper, StandIns};
use weft::runner::{RunRequest, Runner};
use weft::store::{RunStore, SledStore, Status, Store};
use weft_model::limits::Human;
use weft_model::value::RecordedValue;

use super::output;

/// Starts the stand-ins, writes the example workspace pointed at them into `dir`, runs every
/// instance and shows where the avatars landed.
pub fn main(dir: PathBuf, path_helper: PathHelper) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let rt = super::runtime()?;
    rt.block_on(run(&dir, path_helper))
}

/// Which example `weft demo` runs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Example {
    /// The Pokemon Avatar Sync example: a code step, two HTTP calls and an S3 upload.
    PokemonAvatarSync,
    /// The Contacts Sync example: pages, loops and branches against a contacts API and a CRM.
    ContactsSync,
}

/// `--path-helper`: which Path Helper the demo runs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PathHelperArg {
    /// The built-in Path Helper, compiled from Rust.
    Rust,
    /// The walkthrough's JavaScript, written into the integration file as the step's `code`
    /// (examples/pokemon-avatar-sync/path-helper-inline.js), on QuickJS.
    Js,
    /// examples/pokemon-avatar-sync/path_helper.py as the step's `code_file` (needs
    /// componentize-py).
    Python,
}

impl From<PathHelperArg> for PathHelper {
    fn from(arg: PathHelperArg) -> Self {
        match arg {
            PathHelperArg::Rust => Self::Rust,
            PathHelperArg::Js => Self::JavaScript,
            PathHelperArg::Python => Self::Python,
        }
    }
}

async fn run(dir: &Path, path_helper: PathHelper) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let stand_ins = StandIns::start(&dir.join("s3"), &demo::random_secret()).await?;
    let workspace = demo::write_workspace_with(dir, &stand_ins, path_helper)?;
    let ws = super::load_workspace(&workspace)?;

    println!("Weft demo: Pokemon Avatar Sync, offline");
    println!(
        "  Pokemon API stand-in  http://{}  (pikachu, onix; avatars served as PNG)",
        stand_ins.pokeapi
    );
    println!(
        "  S3 stand-in (s3s-fs)  http://{}  bucket `{}`, SigV4 signatures checked, objects in {}",
        stand_ins.s3,
        demo::BUCKET,
        stand_ins.s3_root.join(demo::BUCKET).display()
    );
    println!(
        "  workspace             {}  (examples/pokemon-avatar-sync pointed at the stand-ins)",
        workspace.display()
    );
    match path_helper {
        PathHelper::Rust => {}
        PathHelper::JavaScript => println!(
            "  Path Helper           the walkthrough's JavaScript, inline in {} (QuickJS)",
            dir.join("integration.toml").display()
        ),
        PathHelper::Python => println!(
            "  Path Helper           {} (Python, the step's code_file)",
            dir.join("path_helper.py").display()
        ),
    }

    let store_dir = dir.join("store");
    let store = Arc::new(Store::from(SledStore::open(&store_dir)?));
    let host = super::plugin_host(&store)?;
    super::prepare_code(&host, &ws)?;
    let runner = Runner::new(host, store.clone());

    let mut failed = 0;
    for instance in &ws.file.instances {
        let customer = ws.customer(&instance.customer);
        let config = ws.resolve_config(instance).ok();
        let var = |name: &str| {
            config
                .as_ref()
                .and_then(|c| c.0.get(name))
                .map(|v| v.as_text())
                .unwrap_or_default()
        };
        println!(
            "\n▶ {} — customer {} (avatar {})",
            instance.id,
            customer
                .map(|c| c.name.as_str())
                .unwrap_or(&instance.customer),
            var("pokemonAvatar")
        );
        let run = runner
            .run(RunRequest {
                workspace: &ws,
                instance: &instance.id,
                flow: None,
                trigger: serde_json::Value::Null,
            })
            .await?;
        output::steps_table(&run);
        let took = Human(std::time::Duration::from_micros(
            run.run.duration_us.unwrap_or_default(),
        ));
        if run.run.status == Status::Succeeded {
            // Where the object landed, as the S3 step reported it.
            if let Some(RecordedValue::Json(saved)) =
                run.steps.last().and_then(|s| s.output.as_ref())
            {
                let key = saved["key"].as_str().unwrap_or_default();
                println!(
                    "  saved {} ({} bytes, {}) → {}",
                    saved["location"].as_str().unwrap_or_default(),
                    saved["size"],
                    saved["content_type"].as_str().unwrap_or_default(),
                    stand_ins.object_path(demo::BUCKET, key).display()
                );
            }
            println!("  run {} succeeded in {took}", run.run.id);
        } else {
            failed += 1;
            println!("  run {} {} in {took}", run.run.id, run.run.status);
            if let Some(error) = &run.run.error {
                eprintln!("  error: {error}");
            }
        }
    }
    store.flush()?;

    let total = ws.file.instances.len();
    println!(
        "\n{} of {total} runs succeeded in {}. Runs are recorded in {}:",
        total - failed,
        Human(started.elapsed()),
        store_dir.display()
    );
    println!("  weft runs list --store {}", store_dir.display());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
