//! Inline code steps: JavaScript or Python written into the integration file (`code = """…"""`)
//! or beside it (`code_file = "path-helper.js"`), run like a plugin without being one.
//!
//! Validation turns each code step into a plugin of the workspace named
//! `code:INTEGRATION/FLOW/STEP`, whose source is the code ([`CodeSource`]) and whose grants are
//! what the step asks for in `capabilities`, as far as the workspace's `[code]` policy allows.
//! The engine builds the source into a component (keyed by its digest, so an unchanged step is
//! never built twice) and from then on it is an ordinary plugin: policy, limits, records.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The prefix of the plugin names code steps get; reserved, so no `[plugins]` entry may use it.
pub const PLUGIN_PREFIX: &str = "code:";

/// The language of a code step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeLanguage {
    /// JavaScript: an ES module or CommonJS.
    JavaScript,
    /// Python 3.
    Python,
}

impl CodeLanguage {
    /// The language of a file, from its extension.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "js" | "mjs" | "cjs" => Some(Self::JavaScript),
            "py" => Some(Self::Python),
            _ => None,
        }
    }

    /// The extension its source files have.
    pub fn extension(self) -> &'static str {
        match self {
            Self::JavaScript => "js",
            Self::Python => "py",
        }
    }
}

/// The JavaScript engine a step runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsEngine {
    /// QuickJS, built inside `weft`: small components that start fast.
    #[default]
    QuickJs,
    /// SpiderMonkey (StarlingMonkey, built by componentize-js from npm): a fuller web API,
    /// larger components that start slower.
    SpiderMonkey,
}

impl JsEngine {
    /// The engine named `name` (`quickjs` or `spidermonkey`).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "quickjs" => Ok(Self::QuickJs),
            "spidermonkey" => Ok(Self::SpiderMonkey),
            other => Err(format!(
                "there is no JavaScript engine `{other}`: use `quickjs` (the default) or `spidermonkey`"
            )),
        }
    }
}

/// The code of one code step, as the engine builds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeSource {
    /// The step, as `INTEGRATION/FLOW/STEP`, for messages.
    pub step: String,
    /// The source's language.
    pub language: CodeLanguage,
    /// For JavaScript, the engine.
    pub engine: JsEngine,
    /// The source text.
    pub text: String,
    /// The host interfaces it imports besides `config` and `log`: `http`, `s3`, `state`.
    pub imports: Vec<String>,
    /// Where the text is written, so that build errors point into the file.
    pub origin: CodeOrigin,
}

/// Where a code step's text is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeOrigin {
    /// The file: the integration file for `code`, the code file for `code_file`.
    pub file: PathBuf,
    /// The line of the file the code's first line is on, when it could be found.
    pub first_line: Option<usize>,
}

impl CodeOrigin {
    /// Where `text`, given as `code` in the integration file whose content is `file_text`,
    /// starts: the first line of the file holding its first non-blank line.
    pub fn inline(file: &Path, file_text: Option<&str>, text: &str) -> Self {
        let first_line = file_text.and_then(|file_text| {
            let (skipped, line) = text
                .lines()
                .enumerate()
                .find(|(_, line)| !line.trim().is_empty())?;
            // The whole text where it is written verbatim (a literal string), else its first
            // line (a basic string whose escapes changed the rest).
            let whole = text.trim_start_matches(['\n', '\r']);
            let at = file_text
                .find(whole)
                .map(|at| at + whole.find(line).unwrap_or(0))
                .or_else(|| file_text.find(line))?;
            let line_no = file_text[..at].matches('\n').count() + 1;
            line_no.checked_sub(skipped)
        });
        Self {
            file: file.to_path_buf(),
            first_line,
        }
    }

    /// `line` of the code (from 1) as a line of the file, or as "line N of the code".
    pub fn place(&self, line: usize, column: Option<usize>) -> String {
        let column = column.map(|c| format!(":{c}")).unwrap_or_default();
        match self.first_line {
            Some(first) => format!("{}:{}{column}", self.file.display(), first + line - 1),
            None => format!("{} (line {line}{column} of the code)", self.file.display()),
        }
    }
}

/// The plugin name of the code step `step` of `flow` in `integration`.
pub fn plugin_name(integration: &str, flow: &str, step: &str) -> String {
    format!("{PLUGIN_PREFIX}{integration}/{flow}/{step}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_code_is_found_in_its_file() {
        let file =
            "name = \"x\"\n\n[[flows.steps]]\nid = \"a\"\ncode = '''\nmodule.exports = 1;\n'''\n";
        let origin = CodeOrigin::inline(Path::new("i.toml"), Some(file), "module.exports = 1;\n");
        assert_eq!(origin.first_line, Some(6));
        assert_eq!(origin.place(1, Some(8)), "i.toml:6:8");
        let lost = CodeOrigin::inline(Path::new("i.toml"), None, "x");
        assert_eq!(lost.place(3, None), "i.toml (line 3 of the code)");
    }
}
