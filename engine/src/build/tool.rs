//! Finding and starting the ecosystem tools that build code steps: componentize-js (npm, for
//! steps on SpiderMonkey) and componentize-py (PyPI).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;

use super::{JS_TOOL_ENV, Language, PY_TOOL_ENV};

/// How to start a componentize tool.
pub(super) struct Tool {
    pub(super) name: &'static str,
    program: OsString,
    args: Vec<OsString>,
}

impl Tool {
    /// The tool for `language`: the override variable, then (for JavaScript) a `node_modules`
    /// beside the source or the current directory or above them, then `PATH`, then (for
    /// Python) the `componentize_py` module of `python3`.
    pub(super) fn find(language: Language, source: &Path) -> anyhow::Result<Self> {
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

    pub(super) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    pub(super) fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(super) fn version(&self) -> String {
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
