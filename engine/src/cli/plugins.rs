//! `weft plugins inspect` and `weft plugins add`: what a component is and the policy to load it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use weft::plugin::inspect::{Inspection, inspect};
use weft_model::limits::Bytes;
use weft_model::manifest::Manifest;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a component's imports, exports, `weft:step` version, manifest, requested
    /// capabilities, SHA-256 and size. The component is compiled, never run.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the `[plugins.NAME]` entry to paste into a workspace file: source, digest pin and
    /// the grants its manifest requests (review them: grant no more than you must).
    Add {
        /// The `.wasm` component.
        file: PathBuf,
        /// The name steps will use (default: the manifest's name, else the file's).
        #[arg(long)]
        name: Option<String>,
    },
}

fn read(file: &Path) -> anyhow::Result<(Inspection, Option<Manifest>)> {
    let bytes =
        std::fs::read(file).with_context(|| format!("failed to read `{}`", file.display()))?;
    let inspection = inspect(&bytes).with_context(|| format!("`{}`", file.display()))?;
    let manifest = Manifest::beside(file).map_err(anyhow::Error::msg)?;
    Ok((inspection, manifest))
}

pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Inspect { file, json } => {
            let (i, manifest) = read(&file)?;
            if json {
                let out = serde_json::json!({ "inspection": i, "manifest": manifest });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("Component    {} ({})", file.display(), Bytes(i.size));
            println!("sha256       {}", i.sha256);
            let world = match (&i.weft_version, i.exports_run) {
                (Some(v), true) if v.starts_with("0.1.") => {
                    format!("weft:step@{v} (served by this engine)")
                }
                (Some(v), true) => {
                    format!("weft:step@{v} (NOT served by this engine, which serves 0.1)")
                }
                (None, true) => "a step world (imports no weft:step interface)".to_string(),
                (_, false) => "not a step: it does not export `run`".to_string(),
            };
            println!("World        {world}");
            println!("Exports      {}", i.exports.join(", "));
            println!("Imports");
            for import in &i.imports {
                println!("  {import}");
            }
            println!(
                "Needs grants {}",
                if i.needs.is_empty() {
                    "none (config and log are always available)".to_string()
                } else {
                    i.needs.join(", ")
                }
            );
            match manifest {
                None => println!(
                    "Manifest     none (looked for `{}`)",
                    Manifest::path_for(&file).display()
                ),
                Some(m) => {
                    println!(
                        "Manifest     {} {}{}",
                        m.name,
                        m.version,
                        m.description.map(|d| format!(" — {d}")).unwrap_or_default()
                    );
                    for (name, input) in &m.inputs {
                        println!(
                            "  input  {name}: {:?}{}{}",
                            input.kind,
                            if input.required { ", required" } else { "" },
                            input
                                .description
                                .as_ref()
                                .map(|d| format!(" — {d}"))
                                .unwrap_or_default()
                        );
                    }
                    let c = &m.capabilities;
                    println!(
                        "  requests http {:?}, s3 {:?}, state {}, config {}, credentials {}",
                        c.http,
                        c.s3,
                        c.state,
                        c.config
                            .as_ref()
                            .map_or("all".to_string(), |v| format!("{v:?}")),
                        if c.credentials.is_empty() {
                            "any".to_string()
                        } else {
                            c.credentials
                                .iter()
                                .map(|k| k.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    );
                }
            }
        }
        Command::Add { file, name } => {
            let (i, manifest) = read(&file)?;
            if !i.exports_run {
                anyhow::bail!(
                    "`{}` is not a step: it does not export `run` from the `weft:step` world",
                    file.display()
                );
            }
            let name = name
                .or_else(|| manifest.as_ref().map(|m| m.name.clone()))
                .unwrap_or_else(|| {
                    file.file_stem()
                        .map(|s| s.to_string_lossy().replace('_', "-"))
                        .unwrap_or_else(|| "plugin".into())
                });
            let requested = manifest.as_ref().map(|m| m.capabilities.clone());
            println!("[plugins.{name}]");
            println!("source = {:?}", file.display().to_string());
            println!("sha256 = \"{}\"", i.sha256);
            for need in &i.needs {
                match need.as_str() {
                    "http" => {
                        let hosts = requested
                            .as_ref()
                            .map(|c| c.http.clone())
                            .unwrap_or_default();
                        println!(
                            "http = {{ allow = {:?} }}   # narrow to the hosts it needs",
                            if hosts.is_empty() {
                                vec!["https://api.example.com".to_string()]
                            } else {
                                hosts
                            }
                        );
                    }
                    "s3" => {
                        let buckets = requested.as_ref().map(|c| c.s3.clone()).unwrap_or_default();
                        println!(
                            "s3 = {{ buckets = {:?} }}   # narrow to the buckets it needs",
                            if buckets.is_empty() {
                                vec!["BUCKET".to_string()]
                            } else {
                                buckets
                            }
                        );
                    }
                    "state" => println!("state = true"),
                    _ => {}
                }
            }
            println!("limits = {{ time = \"30s\", memory = \"128 MiB\", output = \"16 MiB\" }}");
            if manifest.is_none() {
                eprintln!(
                    "note: `{}` has no manifest (`{}`), so its inputs are not checked and its grants not bounded by what it requests",
                    file.display(),
                    Manifest::path_for(&file).display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft build`: compiles a code step and says what came out and what it needs.
pub fn build(
    source: &Path,
    output: Option<&Path>,
    engine: weft::build::JsEngine,
) -> anyhow::Result<ExitCode> {
    let language = weft::build::Language::of(source)?;
    eprintln!("Building {} ({}) ...", source.display(), language.name());
    let built = weft::build::build(source, output, engine)?;
    println!(
        "Built {} ({}, sha256 {}) in {:.1} s with {}",
        built.output.display(),
        Bytes(built.size),
        built.sha256,
        built.elapsed.as_secs_f64(),
        built.tool
    );
    println!("  imports   weft:step/{{{}}}", built.imports.join(", "));
    match (&built.manifest, &built.manifest_copied) {
        (Some(manifest), Some(copied)) => println!(
            "  manifest  {} (copied to {})",
            manifest.display(),
            copied.display()
        ),
        (Some(manifest), None) => println!("  manifest  {}", manifest.display()),
        (None, _) => println!(
            "  manifest  none: the step imports config and log only; add {} to request http, s3 or state",
            Manifest::path_for(source).display()
        ),
    }
    println!(
        "Use it as a plugin: `weft plugins add {}` prints the workspace entry.",
        built.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
