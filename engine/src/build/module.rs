//! The author's JavaScript as the ES module the runtime imports.
//!
//! Both engines load ES modules only, while code pasted from Prismatic is CommonJS
//! (`module.exports = async ({ configVars }, params) => …`). A source that neither imports nor
//! exports is taken as CommonJS and given `module`, `exports` and a `require` that explains
//! itself, on its first line so that every line keeps its number; `module.exports` becomes the
//! default export. Only columns on line 1 move, by [`EsModule::line1_shift`].

/// A step's source, as an ES module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsModule {
    /// The module's text.
    pub text: String,
    /// How many characters were put before the author's first line.
    pub line1_shift: usize,
}

const COMMONJS_PRELUDE: &str = "const module = { exports: {} }; let exports = module.exports; \
const require = (name) => { throw new Error(`require(${JSON.stringify(name)}): a code step cannot load packages; \
put what it needs in the step itself`); }; ";

/// `source` as an ES module: unchanged if it is one, wrapped if it is CommonJS.
pub fn es_module(source: &str) -> EsModule {
    if is_es_module(source) {
        return EsModule {
            text: source.to_string(),
            line1_shift: 0,
        };
    }
    EsModule {
        text: format!("{COMMONJS_PRELUDE}{source}\n;export default module.exports;\n"),
        line1_shift: COMMONJS_PRELUDE.chars().count(),
    }
}

/// Whether a line of `source` starts with an `import` or `export` statement (a dynamic
/// `import(` call does not count).
fn is_es_module(source: &str) -> bool {
    source.lines().any(|line| {
        let line = line.trim_start();
        let statement = |keyword: &str| {
            line.strip_prefix(keyword).is_some_and(|rest| {
                rest.starts_with(|c: char| c.is_whitespace() || c == '{' || c == '*')
                    || (keyword == "import" && rest.starts_with(['\'', '"']))
            })
        };
        statement("export") || statement("import")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es_modules_are_left_alone() {
        for source in [
            "export function run() {}",
            "export default async ({ configVars }) => ({ data: 1 });",
            "import x from './x.js';\nexport const run = x;",
            "export { run };",
        ] {
            assert_eq!(es_module(source).text, source);
        }
    }

    #[test]
    fn commonjs_keeps_its_line_numbers_and_exports_by_default() {
        let source =
            "module.exports = async ({ configVars }, params) => {\n  return { data: 1 };\n};";
        let module = es_module(source);
        let lines: Vec<&str> = module.text.lines().collect();
        assert!(lines[0].ends_with("module.exports = async ({ configVars }, params) => {"));
        assert_eq!(lines[1], "  return { data: 1 };");
        assert!(module.text.ends_with("export default module.exports;\n"));
        assert_eq!(
            &lines[0][module.line1_shift..],
            "module.exports = async ({ configVars }, params) => {"
        );
    }

    #[test]
    fn a_dynamic_import_or_an_exported_word_does_not_make_a_module() {
        assert!(!is_es_module("const m = import('x');"));
        assert!(!is_es_module("exports.run = () => 1;"));
        assert!(!is_es_module("const exported = 1;"));
    }
}
