//! Code steps' components: built from the step's source on first use, then kept in the compile
//! cache under a digest of everything the build depends on, so an unchanged step is never
//! built twice (across restarts too) and a changed one is built by the next `apply`.

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use weft_model::code::{CodeLanguage, CodeSource, JsEngine};

use super::cache::{CacheCounters, CompileCache};
use super::{PluginHost, policy};
use crate::build::{self, Code, Language};
use weft_model::workspace::{PluginSource, Workspace};

/// Changes whenever what a build produces for the same source changes, beyond the runtime
/// versions below: the wrappers embedded in `weft` are part of the key as well.
const BUILD_FORMAT: &str = "weft-code-1";

/// The component built from `code`: from `cache` when it was built before, else built now and
/// kept there. A build error names the step and points into the file the code is written in.
pub(super) fn component(
    code: &CodeSource,
    cache: Option<&CompileCache>,
    counters: &CacheCounters,
) -> anyhow::Result<Vec<u8>> {
    let key = key(code);
    if let Some(bytes) = cache.and_then(|cache| cache.load_built(&key)) {
        counters.code_reused.fetch_add(1, Ordering::Relaxed);
        return Ok(bytes);
    }
    let file_name = file_name(code);
    let imports: Vec<&'static str> = ["config", "log", "http", "s3", "state"]
        .into_iter()
        .filter(|i| matches!(*i, "config" | "log") || code.imports.iter().any(|c| c == i))
        .collect();
    let compiled = build::compile(&Code {
        text: &code.text,
        language: language(code.language),
        engine: code.engine,
        imports: &imports,
        file_name: &file_name,
    })?;
    let compiled = compiled.map_err(|error| {
        anyhow::anyhow!(
            "the code of step `{}` does not build ({}):\n{}",
            code.step,
            error.tool,
            in_file(&error.message, &file_name, code)
        )
    })?;
    counters.code_built.fetch_add(1, Ordering::Relaxed);
    if let Some(cache) = cache {
        cache.store_built(&key, &compiled.bytes);
    }
    Ok(compiled.bytes)
}

impl PluginHost {
    /// Builds every code step of `ws` (or finds it built) and checks it against the policy, so
    /// that `validate`, `apply` and `serve` report a step that does not build before any run.
    /// Returns how many code steps there are; the error lists every step's problem.
    pub fn prepare_code(&self, ws: &Workspace) -> anyhow::Result<usize> {
        let mut problems = Vec::new();
        let mut steps = 0;
        for (name, plugin) in &ws.file.plugins {
            let Some(code) = &plugin.code else { continue };
            steps += 1;
            let loaded = self
                .load(name, &PluginSource::Code(code.clone()))
                .and_then(|plugin| policy::check(ws, &plugin).map_err(anyhow::Error::msg));
            if let Err(e) = loaded {
                problems.push(format!("{e:#}"));
            }
        }
        if problems.is_empty() {
            Ok(steps)
        } else {
            anyhow::bail!("{}", problems.join("\n"))
        }
    }
}

/// The name the step's source has inside its component, as stacks and build errors show it.
pub(super) fn file_name(code: &CodeSource) -> String {
    format!(
        "{}.{}",
        code.step.rsplit('/').next().unwrap_or("step"),
        code.language.extension()
    )
}

/// A code step's error message with the places in its stack moved into the file the code is
/// written in.
pub(super) fn step_message(code: &CodeSource, message: &str) -> String {
    let file_name = file_name(code);
    // QuickJS names modules by their path in the build's directory: `/step.js`.
    let message = message.replace(&format!("/{file_name}:"), &format!("{file_name}:"));
    in_file(&message, &file_name, code)
}

fn language(language: CodeLanguage) -> Language {
    match language {
        CodeLanguage::JavaScript => Language::JavaScript,
        CodeLanguage::Python => Language::Python,
    }
}

/// The digest of everything the component depends on: the source, its language and engine,
/// what it imports, the builder and `weft`'s own version (whose wrappers it embeds).
fn key(code: &CodeSource) -> String {
    let runtime = match (code.language, code.engine) {
        (CodeLanguage::JavaScript, JsEngine::QuickJs) => build::quickjs::RUNTIME,
        (CodeLanguage::JavaScript, JsEngine::SpiderMonkey) => "componentize-js",
        (CodeLanguage::Python, _) => "componentize-py",
    };
    let runtime_digest = match (code.language, code.engine) {
        (CodeLanguage::JavaScript, JsEngine::QuickJs) => build::quickjs::runtime_digest(),
        _ => "",
    };
    let mut digest = Sha256::new();
    let [js_prelude, js_wrapper, py_wrapper] = build::wrappers();
    for part in [
        BUILD_FORMAT,
        env!("CARGO_PKG_VERSION"),
        js_prelude,
        js_wrapper,
        py_wrapper,
        runtime,
        runtime_digest,
        code.language.extension(),
        &code.imports.join(","),
        &code.text,
    ] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    hex::encode(digest.finalize())
}

/// `file_name:LINE:COLUMN` (and `file_name", line LINE` in Python tracebacks) in a build
/// error, as places in the file the code is written in.
fn in_file(message: &str, file_name: &str, code: &CodeSource) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    let marker = format!("{file_name}:");
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let (line, after_line) = number(after);
        let Some(line) = line else {
            out.push_str(&marker);
            rest = after;
            continue;
        };
        let (column, after_column) = match after_line.strip_prefix(':') {
            Some(tail) => match number(tail) {
                (Some(column), after) => (Some(column), after),
                (None, _) => (None, after_line),
            },
            None => (None, after_line),
        };
        out.push_str(&code.origin.place(line, column));
        rest = after_column;
    }
    out.push_str(rest);
    out
}

fn number(text: &str) -> (Option<usize>, &str) {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    (text[..digits].parse().ok(), &text[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::code::CodeOrigin;

    fn code(first_line: Option<usize>) -> CodeSource {
        CodeSource {
            step: "pokemon/sync/path-helper".into(),
            language: CodeLanguage::JavaScript,
            engine: JsEngine::QuickJs,
            text: "module.exports = 1;".into(),
            imports: Vec::new(),
            origin: CodeOrigin {
                file: "integration.toml".into(),
                first_line,
            },
        }
    }

    #[test]
    fn errors_point_into_the_integration_file() {
        let message = "SyntaxError: unexpected token\n    at path-helper.js:3:14";
        assert_eq!(
            in_file(message, "path-helper.js", &code(Some(20))),
            "SyntaxError: unexpected token\n    at integration.toml:22:14"
        );
        assert_eq!(
            in_file(message, "path-helper.js", &code(None)),
            "SyntaxError: unexpected token\n    at integration.toml (line 3:14 of the code)"
        );
    }

    #[test]
    fn the_key_follows_the_source_and_what_it_imports() {
        let a = code(Some(1));
        let mut b = a.clone();
        b.origin.first_line = Some(9);
        assert_eq!(
            key(&a),
            key(&b),
            "moving the code in its file changes nothing"
        );
        b.text.push(' ');
        assert_ne!(key(&a), key(&b));
        let mut c = a.clone();
        c.imports.push("http".into());
        assert_ne!(key(&a), key(&c));
    }
}
