//! Compiling a JavaScript or Python code step into a `weft:step` component: [`compile`] for
//! source (inline code steps and `weft build` alike), [`build`] for `weft build`'s files.
//! JavaScript is built on QuickJS inside `weft` ([`quickjs`]) or on SpiderMonkey with
//! componentize-js (npm); Python with componentize-py (PyPI).
//!
//! The author writes a module exporting `run(context, inputs)` (or, in JavaScript, Prismatic's
//! default-export function). The builder puts it in a scratch directory beside a small runtime
//! (`runtime.js` / `runtime.py`, embedded here, with `prelude.js` evaluated first) that adapts it
//! to the world, and a copy of `weft:step` with one more world, `code-step`, which imports
//! `config` and `log` plus only what the step asks for: `http`, `s3`, `state`. A code step
//! therefore needs no grant it does not use, and is an ordinary plugin from then on: policy,
//! limits and the compile cache apply.

mod explain;
mod module;
pub mod quickjs;
mod snapshot;
mod tool;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use weft_model::manifest::Manifest;

use explain::in_source;
use tool::Tool;

const WIT: &str = include_str!("../../../wit/step.wit");
const JS_RUNTIME: &str = include_str!("runtime.js");
const PY_RUNTIME: &str = include_str!("runtime.py");
const JS_RUNTIME_FILE: &str = "__weft_runtime__.js";
const JS_PRELUDE: &str = include_str!("prelude.js");
const JS_PRELUDE_FILE: &str = "__weft_prelude__.js";
const PY_RUNTIME_MODULE: &str = "__weft_runtime__";

/// The wrappers every JavaScript and Python component embeds, for keys of built components.
pub fn wrappers() -> [&'static str; 3] {
    [JS_PRELUDE, JS_RUNTIME, PY_RUNTIME]
}

/// Overrides the `componentize-js` command (a path to the executable or to its `cli.js`).
pub const JS_TOOL_ENV: &str = "WEFT_COMPONENTIZE_JS";
/// Overrides the `componentize-py` command.
pub const PY_TOOL_ENV: &str = "WEFT_COMPONENTIZE_PY";

/// The language of a code step, from its file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `.js` or `.mjs`, built on QuickJS (or SpiderMonkey, with componentize-js).
    JavaScript,
    /// `.py`, built with componentize-py.
    Python,
}

impl Language {
    /// The language of `source`, from its extension.
    pub fn of(source: &Path) -> anyhow::Result<Self> {
        match source.extension().and_then(|e| e.to_str()) {
            Some("js" | "mjs") => Ok(Self::JavaScript),
            Some("py") => Ok(Self::Python),
            _ => bail!(
                "`{}` is not a code step weft can build: name a JavaScript (`.js`, `.mjs`) or Python (`.py`) file",
                source.display()
            ),
        }
    }

    /// The language's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::JavaScript => "JavaScript",
            Self::Python => "Python",
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Self::JavaScript => "componentize-js",
            Self::Python => "componentize-py",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Self::JavaScript => {
                "install it with `npm install -g @bytecodealliance/componentize-js` (or into a `node_modules` beside the step), or set WEFT_COMPONENTIZE_JS to its path"
            }
            Self::Python => {
                "install it with `python3 -m pip install componentize-py`, or set WEFT_COMPONENTIZE_PY to its path"
            }
        }
    }
}

pub use weft_model::code::JsEngine;

/// A code step's source, ready to compile.
#[derive(Debug, Clone)]
pub struct Code<'a> {
    /// The source text.
    pub text: &'a str,
    /// Its language.
    pub language: Language,
    /// For JavaScript, the engine to build for.
    pub engine: JsEngine,
    /// The `weft:step` interfaces the component imports: `config` and `log`, and those of
    /// `http`, `s3` and `state` the step asks for.
    pub imports: &'a [&'static str],
    /// The file name the runtime gives the source (`step.js`), as errors show it.
    pub file_name: &'a str,
}

/// A component compiled from source.
#[derive(Debug)]
pub struct Compiled {
    /// The component.
    pub bytes: Vec<u8>,
    /// The tool or runtime that built it, with its version.
    pub tool: String,
}

/// Why source did not compile: the tool's report, in the author's terms (`file_name:line:col`).
#[derive(Debug, Clone)]
pub struct CompileError {
    /// The tool that failed.
    pub tool: String,
    /// What it said, trimmed to the author's error.
    pub message: String,
}

/// Compiles a code step's source into a `weft:step` component.
pub fn compile(code: &Code<'_>) -> anyhow::Result<Result<Compiled, CompileError>> {
    if code.language == Language::JavaScript && code.engine == JsEngine::QuickJs {
        return Ok(compile_quickjs(code));
    }
    let scratch = tempfile::Builder::new()
        .prefix("weft-build-")
        .tempdir()
        .context("failed to create a scratch directory for the build")?;
    let dir = scratch.path();
    std::fs::create_dir(dir.join("wit")).context("failed to prepare the build")?;
    std::fs::write(dir.join("wit/step.wit"), wit_with_code_world(code.imports))
        .context("failed to prepare the build")?;
    let file_name = code.file_name;
    let mut shift = 0;
    let text = match code.language {
        Language::JavaScript => {
            let module = module::es_module(code.text);
            shift = module.line1_shift;
            module.text
        }
        Language::Python => code.text.to_string(),
    };
    std::fs::write(dir.join(file_name), &text).context("failed to prepare the build")?;
    if code.language == Language::JavaScript {
        std::fs::write(dir.join(JS_PRELUDE_FILE), JS_PRELUDE)
            .context("failed to prepare the build")?;
    }

    let tool = Tool::find(code.language, Path::new(file_name))?;
    let wasm = dir.join("out.wasm");
    let mut command = tool.command();
    match code.language {
        Language::JavaScript => {
            let runtime = js_runtime(file_name, code.imports, JsEngine::SpiderMonkey);
            std::fs::write(dir.join(JS_RUNTIME_FILE), runtime)
                .context("failed to prepare the build")?;
            command
                .arg(JS_RUNTIME_FILE)
                .args(["--wit", "wit", "--world-name", "code-step"])
                // The step world has no WASI HTTP: leave out the runtime's fetch support.
                .args(["--disable", "http", "fetch-event", "--out"])
                .arg(&wasm);
        }
        Language::Python => {
            let module = file_name.trim_end_matches(".py");
            let runtime = py_runtime(module, file_name, code.imports);
            std::fs::write(dir.join(format!("{PY_RUNTIME_MODULE}.py")), runtime)
                .context("failed to prepare the build")?;
            command
                .args(["--wit-path", "wit", "--world", "code-step", "componentize"])
                .arg(PY_RUNTIME_MODULE)
                .args(["--python-path", ".", "--output"])
                .arg(&wasm);
        }
    }
    command.current_dir(dir).env("RUST_BACKTRACE", "0");
    let result = command
        .output()
        .with_context(|| format!("failed to start `{}`", tool.display()))?;
    if !result.status.success() || !wasm.exists() {
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&result.stderr),
            String::from_utf8_lossy(&result.stdout)
        );
        let scratch_path = dir.display().to_string();
        return Ok(Err(CompileError {
            tool: tool.name.into(),
            message: explain::explain(code.language, &log, file_name, shift, &scratch_path),
        }));
    }
    let bytes = std::fs::read(&wasm).context("failed to read the built component")?;
    Ok(Ok(Compiled {
        bytes,
        tool: tool.version(),
    }))
}

/// Builds a JavaScript step on Weft's QuickJS runtime: the step's module (made an ES module),
/// the prelude and the runtime wrapper, evaluated once into the component's snapshot.
fn compile_quickjs(code: &Code<'_>) -> Result<Compiled, CompileError> {
    let module = module::es_module(code.text);
    let modules = vec![
        (JS_PRELUDE_FILE.to_string(), JS_PRELUDE.to_string()),
        (code.file_name.to_string(), module.text),
        (
            JS_RUNTIME_FILE.to_string(),
            js_runtime(code.file_name, code.imports, JsEngine::QuickJs),
        ),
    ];
    match quickjs::componentize(modules, JS_RUNTIME_FILE, code.imports) {
        Ok(bytes) => Ok(Compiled {
            bytes,
            tool: quickjs::RUNTIME.into(),
        }),
        Err(log) => Err(CompileError {
            tool: "QuickJS".into(),
            message: explain::quickjs(&log, code.file_name, module.line1_shift),
        }),
    }
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    /// The component written.
    pub output: PathBuf,
    /// The source's language.
    pub language: Language,
    /// The tool and its version, as it reports it.
    pub tool: String,
    /// The `weft:step` interfaces the component imports.
    pub imports: Vec<&'static str>,
    /// The manifest the imports came from, if the source has one.
    pub manifest: Option<PathBuf>,
    /// Where the manifest was copied so that it sits beside the component.
    pub manifest_copied: Option<PathBuf>,
    /// The component's size in bytes.
    pub size: u64,
    /// The component's SHA-256, for a `sha256` pin.
    pub sha256: String,
    /// How long the build took.
    pub elapsed: Duration,
}

/// Builds `source` into a component at `output` (default: the source with `.wasm`), for
/// JavaScript on `engine`.
pub fn build(source: &Path, output: Option<&Path>, engine: JsEngine) -> anyhow::Result<Built> {
    let started = Instant::now();
    let language = Language::of(source)?;
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("failed to read `{}`", source.display()))?;
    let output = output.map_or_else(|| source.with_extension("wasm"), Path::to_path_buf);
    let manifest = Manifest::beside(source).map_err(anyhow::Error::msg)?;
    let imports = imports_for(manifest.as_ref());
    let file_name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = Code {
        text: &text,
        language,
        engine,
        imports: &imports,
        file_name: &file_name,
    };
    let compiled = match compile(&code)? {
        Ok(compiled) => compiled,
        Err(error) => bail!(
            "{} failed to build `{}`:\n{}",
            error.tool,
            source.display(),
            in_source(&error.message, &file_name, source)
        ),
    };
    let bytes = compiled.bytes;

    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    std::fs::write(&output, &bytes)
        .with_context(|| format!("failed to write `{}`", output.display()))?;

    let manifest_path = Manifest::path_for(source);
    let (manifest, manifest_copied) = match manifest {
        None => (None, None),
        Some(_) => {
            let beside_output = Manifest::path_for(&output);
            let copied = if same_file(&beside_output, &manifest_path) {
                None
            } else {
                std::fs::copy(&manifest_path, &beside_output).with_context(|| {
                    format!(
                        "failed to copy the manifest to `{}`",
                        beside_output.display()
                    )
                })?;
                Some(beside_output)
            };
            (Some(manifest_path), copied)
        }
    };

    Ok(Built {
        output,
        language,
        tool: compiled.tool,
        imports,
        manifest,
        manifest_copied,
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        elapsed: started.elapsed(),
    })
}

/// `config` and `log` always; `http`, `s3` and `state` when the manifest requests them.
fn imports_for(manifest: Option<&Manifest>) -> Vec<&'static str> {
    let mut imports = vec!["config", "log"];
    if let Some(m) = manifest {
        if !m.capabilities.http.is_empty() {
            imports.push("http");
        }
        if !m.capabilities.s3.is_empty() {
            imports.push("s3");
        }
        if m.capabilities.state {
            imports.push("state");
        }
    }
    imports
}

/// The `weft:step` package with the `code-step` world added: the `step` world's export, and
/// only the imports given.
fn wit_with_code_world(imports: &[&str]) -> String {
    let mut wit = String::from(WIT);
    wit.push_str(
        "\n/// A code step built by `weft build`: imports only what its manifest requests.\n",
    );
    wit.push_str("world code-step {\n    use types.{value, step-error};\n\n");
    for import in imports {
        wit.push_str(&format!("    import {import};\n"));
    }
    wit.push_str(
        "\n    export run: func(inputs: list<tuple<string, value>>) -> result<value, step-error>;\n}\n",
    );
    wit
}

fn js_runtime(step_file: &str, imports: &[&str], engine: JsEngine) -> String {
    let host_imports = [
        ("config", "hostConfig"),
        ("log", "hostLog"),
        ("http", "hostHttp"),
        ("s3", "hostS3"),
        ("state", "hostState"),
    ]
    .iter()
    .map(|(interface, binding)| {
        if !imports.contains(interface) {
            return format!("const {binding} = null;");
        }
        match engine {
            // Weft's QuickJS runtime puts the host's interfaces on `__weft_host`.
            JsEngine::QuickJs => format!("const {binding} = globalThis.__weft_host.{interface};"),
            JsEngine::SpiderMonkey => {
                format!("import * as {binding} from 'weft:step/{interface}@0.1.0';")
            }
        }
    })
    .collect::<Vec<_>>()
    .join("\n");
    let fail = match engine {
        // A top-level `result` export: QuickJS takes the thrown value as the `err` case,
        // componentize-js an error whose `payload` is.
        JsEngine::QuickJs => "throw error",
        JsEngine::SpiderMonkey => "throw { payload: error }",
    };
    JS_RUNTIME
        .replace("__WEFT_STEP_MODULE__", &format!("./{step_file}"))
        .replace("__WEFT_STEP_FILE__", step_file)
        .replace("__WEFT_RUNTIME_FILE__", JS_RUNTIME_FILE)
        .replace("__WEFT_PRELUDE_FILE__", JS_PRELUDE_FILE)
        .replace("__WEFT_HOST_IMPORTS__", &host_imports)
        .replace("__WEFT_FAIL__", fail)
}

fn py_runtime(module: &str, step_file: &str, imports: &[&str]) -> String {
    let host_imports = ["http", "s3", "state"]
        .iter()
        .map(|interface| {
            if imports.contains(interface) {
                format!("from wit_world.imports import {interface} as _{interface}")
            } else {
                format!("_{interface} = None")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    PY_RUNTIME
        .replace("__WEFT_STEP_MODULE__", module)
        .replace("__WEFT_STEP_FILE__", step_file)
        .replace("__WEFT_RUNTIME_FILE__", &format!("{PY_RUNTIME_MODULE}.py"))
        .replace("__WEFT_HOST_IMPORTS__", &host_imports)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_world_imports_only_what_is_requested() {
        let wit = wit_with_code_world(&["config", "log", "state"]);
        let world = &wit[wit.find("world code-step").unwrap()..];
        assert!(world.contains("import config;"));
        assert!(world.contains("import state;"));
        assert!(!world.contains("import http;"));
        assert!(!world.contains("import s3;"));
    }

    #[test]
    fn runtimes_have_every_placeholder_filled() {
        let js = js_runtime(
            "step.js",
            &["config", "log", "http"],
            JsEngine::SpiderMonkey,
        );
        let py = py_runtime("step", "step.py", &["config", "log", "s3"]);
        assert!(!js.contains("__WEFT_"), "{js}");
        assert!(!py.contains("__WEFT_"), "{py}");
        assert!(js.contains("import * as hostHttp from 'weft:step/http@0.1.0';"));
        assert!(js.contains("const hostState = null;"));
        assert!(py.contains("from wit_world.imports import s3 as _s3"));
        assert!(py.contains("_http = None"));
    }
}
