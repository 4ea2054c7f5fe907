//! `weft build`: compiles a JavaScript or Python code step into a `weft:step` component with the
//! ecosystem's own tools, `componentize-js` (npm) and `componentize-py` (PyPI).
//!
//! The author writes a module exporting `run(context, inputs)`. The builder puts it in a
//! scratch directory beside a small runtime (`runtime.js` / `runtime.py`, embedded here) that
//! adapts it to the world, and a copy of `weft:step` with one more world, `code-step`, which
//! imports `config` and `log` plus only what the step's manifest (`NAME.plugin.toml` beside the
//! source) requests: `http`, `s3`, `state`. A code step therefore needs no grant it does not
//! use, and is an ordinary plugin from then on: policy, limits and the compile cache apply.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use weft_model::manifest::Manifest;

const WIT: &str = include_str!("../../../wit/step.wit");
const JS_RUNTIME: &str = include_str!("runtime.js");
const PY_RUNTIME: &str = include_str!("runtime.py");
const JS_RUNTIME_FILE: &str = "__weft_runtime__.js";
const PY_RUNTIME_MODULE: &str = "__weft_runtime__";

/// Overrides the `componentize-js` command (a path to the executable or to its `cli.js`).
pub const JS_TOOL_ENV: &str = "WEFT_COMPONENTIZE_JS";
/// Overrides the `componentize-py` command.
pub const PY_TOOL_ENV: &str = "WEFT_COMPONENTIZE_PY";

/// The language of a code step, from its file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `.js` or `.mjs`, built with componentize-js.
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

/// Builds `source` into a component at `output` (default: the source with `.wasm`).
pub fn build(source: &Path, output: Option<&Path>) -> anyhow::Result<Built> {
    let started = Instant::now();
    let language = Language::of(source)?;
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("failed to read `{}`", source.display()))?;
    let output = output.map_or_else(|| source.with_extension("wasm"), Path::to_path_buf);
    let manifest = Manifest::beside(source).map_err(anyhow::Error::msg)?;
    let imports = imports_for(manifest.as_ref());
    let tool = Tool::find(language, source)?;

    let scratch = tempfile::Builder::new()
        .prefix("weft-build-")
        .tempdir()
        .context("failed to create a scratch directory for the build")?;
    let dir = scratch.path();
    std::fs::create_dir(dir.join("wit")).context("failed to prepare the build")?;
    std::fs::write(dir.join("wit/step.wit"), wit_with_code_world(&imports))
        .context("failed to prepare the build")?;
    let file_name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(dir.join(&file_name), &text).context("failed to prepare the build")?;
    let wasm = dir.join("out.wasm");

    let mut command = tool.command();
    match language {
        Language::JavaScript => {
            let runtime = js_runtime(&file_name, &imports);
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
            let runtime = py_runtime(module, &file_name, &imports);
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
        bail!(
            "{} failed to build `{}`:\n{}",
            tool.name,
            source.display(),
            explain(language, &log, &file_name, source, &scratch_path)
        );
    }

    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create `{}`", parent.display()))?;
    }
    let bytes = std::fs::read(&wasm).context("failed to read the built component")?;
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
        tool: tool.version(),
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

fn js_runtime(step_file: &str, imports: &[&str]) -> String {
    let host_imports = [
        ("http", "hostHttp"),
        ("s3", "hostS3"),
        ("state", "hostState"),
    ]
    .iter()
    .map(|(interface, binding)| {
        if imports.contains(interface) {
            format!("import * as {binding} from 'weft:step/{interface}@0.1.0';")
        } else {
            format!("const {binding} = null;")
        }
    })
    .collect::<Vec<_>>()
    .join("\n");
    JS_RUNTIME
        .replace("__WEFT_STEP_MODULE__", &format!("./{step_file}"))
        .replace("__WEFT_STEP_FILE__", step_file)
        .replace("__WEFT_RUNTIME_FILE__", JS_RUNTIME_FILE)
        .replace("__WEFT_HOST_IMPORTS__", &host_imports)
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

/// Turns the tool's output into what the author needs: the error, with the file, line and
/// column in the author's own file, without the tool's own stack.
fn explain(language: Language, log: &str, file_name: &str, source: &Path, scratch: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let relevant: Vec<&str> = match language {
        // componentize-js reports an exception during initialization after this line, then
        // its own JavaScript stack (`    at …`) and notes about unhandled rejections.
        Language::JavaScript => match lines
            .iter()
            .position(|l| l.contains("Exception while evaluating top-level script"))
        {
            Some(start) => lines[start + 1..]
                .iter()
                .take_while(|l| {
                    !l.starts_with("    at ")
                        && !l.starts_with("Additionally, some promises")
                        && !l.starts_with("Stack:")
                })
                .copied()
                .collect(),
            None => lines
                .iter()
                .filter(|l| !l.trim_start().starts_with("at ") && !l.trim().is_empty())
                .copied()
                .collect(),
        },
        // componentize-py reports the failed import as an `AssertionError: ` carrying the
        // Python traceback, then its own error chain from `Caused by:`; keep the traceback
        // from the author's first frame (the ones before are the runtime's and importlib's).
        Language::Python => {
            let start = lines
                .iter()
                .position(|l| l.starts_with("AssertionError: "))
                .unwrap_or(0);
            let mut body: Vec<&str> = lines[start..]
                .iter()
                .take_while(|l| !l.starts_with("Caused by:"))
                .copied()
                .collect();
            if let Some(first) = body.first_mut() {
                *first = first.trim_start_matches("AssertionError: ");
            }
            let own = format!("/{file_name}\"");
            if body.first().is_some_and(|l| l.starts_with("Traceback"))
                && let Some(frame) = body.iter().position(|l| l.contains(&own))
            {
                body.drain(1..frame);
            }
            body
        }
    };
    let text = relevant.join("\n");
    let source_display = source.display().to_string();
    // Full paths first (through a placeholder, so the bare file name is not replaced twice).
    const HERE: &str = "\u{0}source\u{0}";
    let text = text
        .replace(&format!("{scratch}/{file_name}"), HERE)
        // componentize-py mounts the Python path at `/0`.
        .replace(&format!("/0/{file_name}"), HERE)
        .replace(&format!("{file_name}:"), &format!("{HERE}:"))
        .replace(&format!("\"{file_name}\""), &format!("\"{HERE}\""))
        .replace(&format!("{scratch}/"), "")
        .replace(HERE, &source_display);
    let text = text.trim();
    if text.is_empty() {
        "the tool failed without saying why".into()
    } else {
        text.to_string()
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// How to start a componentize tool.
struct Tool {
    name: &'static str,
    program: OsString,
    args: Vec<OsString>,
}

impl Tool {
    /// The tool for `language`: the override variable, then (for JavaScript) a `node_modules`
    /// beside the source or the current directory or above them, then `PATH`, then (for
    /// Python) the `componentize_py` module of `python3`.
    fn find(language: Language, source: &Path) -> anyhow::Result<Self> {
        let name = language.tool();
        let env = match language {
            Language::JavaScript => JS_TOOL_ENV,
            Language::Python => PY_TOOL_ENV,
        };
        if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            if !path.exists() {
                bail!(
                    "{env} is set to `{}`, which does not exist; {}",
                    path.display(),
                    language.install_hint()
                );
            }
            return Ok(Self::at(name, path));
        }
        if language == Language::JavaScript {
            let cwd = std::env::current_dir().unwrap_or_default();
            let source_dir = source
                .canonicalize()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf));
            for start in source_dir.iter().chain(std::iter::once(&cwd)) {
                for dir in start.ancestors() {
                    let bin = dir.join("node_modules/.bin").join(name);
                    if bin.exists() {
                        return Ok(Self::at(name, bin));
                    }
                }
            }
        }
        if let Some(bin) = on_path(name) {
            return Ok(Self::at(name, bin));
        }
        if language == Language::Python && python_has_componentize() {
            return Ok(Self {
                name,
                program: "python3".into(),
                args: vec![
                    "-c".into(),
                    "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())".into(),
                ],
            });
        }
        bail!(
            "cannot build a {} step: `{name}` was not found; {}",
            language.name(),
            language.install_hint()
        )
    }

    fn at(name: &'static str, path: PathBuf) -> Self {
        // A `cli.js` is run with node, so the override may name the package's script.
        if path.extension().is_some_and(|e| e == "js") {
            Self {
                name,
                program: "node".into(),
                args: vec![path.into_os_string()],
            }
        } else {
            Self {
                name,
                program: path.into_os_string(),
                args: Vec::new(),
            }
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn version(&self) -> String {
        let out = self.command().arg("--version").output();
        match out {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                let version = text.split_whitespace().last().unwrap_or("").to_string();
                format!("{} {version}", self.name).trim().to_string()
            }
            _ => self.name.to_string(),
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn python_has_componentize() -> bool {
    Command::new("python3")
        .args(["-c", "import componentize_py"])
        .output()
        .is_ok_and(|o| o.status.success())
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
        let js = js_runtime("step.js", &["config", "log", "http"]);
        let py = py_runtime("step", "step.py", &["config", "log", "s3"]);
        assert!(!js.contains("__WEFT_"), "{js}");
        assert!(!py.contains("__WEFT_"), "{py}");
        assert!(js.contains("import * as hostHttp from 'weft:step/http@0.1.0';"));
        assert!(js.contains("const hostState = null;"));
        assert!(py.contains("from wit_world.imports import s3 as _s3"));
        assert!(py.contains("_http = None"));
    }

    #[test]
    fn a_syntax_error_names_the_authors_file() {
        let log = "Error: Failed to initialize component (wizer):\nException while evaluating top-level script\nstep.js:2:14 SyntaxError: expected expression, got '}':\nstep.js:2:14   return {a: };\n    at componentize (file:///x/componentize.js:365:11)\n";
        let text = explain(
            Language::JavaScript,
            log,
            "step.js",
            Path::new("steps/step.js"),
            "/tmp/weft-build-x",
        );
        assert!(
            text.starts_with("steps/step.js:2:14 SyntaxError: expected expression"),
            "{text}"
        );
        assert!(!text.contains("componentize.js"), "{text}");
    }
}
