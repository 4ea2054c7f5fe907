//! `async`/`await` made synchronous, for steps on QuickJS.
//!
//! The QuickJS runtime calls a step's `run` synchronously and never runs the engine's job queue
//! afterwards, so a promise returned by an `async` function never settles there. Nothing a step
//! can wait on is asynchronous, though: host calls (HTTP, S3, state) return their results
//! directly and there are no timers. So before the build, the step's source is rewritten to
//! run the same code without promise jobs: the `async` keyword of a function is blanked out,
//! and `await X` becomes `__weft_await(X)`, which takes a settled thenable's value (or throws its
//! reason) on the spot. `Promise` itself is replaced by a synchronous one in the prelude
//! (`prelude-sync.js`), so `Promise.all`, `new Promise(...)` and `.then` chains settle at once.
//!
//! The rewrite works on tokens (strings, template literals, comments and regular expressions are
//! skipped), takes `await`'s operand as the unary expression the grammar gives it, and keeps
//! every line where it was (`async` becomes spaces), so stack traces and build errors keep the
//! author's line numbers.

/// The function `await X` becomes.
pub const AWAIT_FN: &str = "__weft_await";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An identifier or keyword.
    Word,
    /// A number, string or regular expression literal.
    Literal,
    /// A template literal without substitutions.
    Template,
    /// `` `…${ `` (opens), `` }…${ `` (closes and opens), `` }…` `` (closes).
    TemplateHead,
    TemplateMiddle,
    TemplateTail,
    /// `(`, `[`, `{`.
    Open,
    /// `)`, `]`, `}`.
    Close,
    /// Any other punctuator.
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// Whether a line break comes between the previous token and this one.
    after_newline: bool,
}

/// `source` with its `async` functions made synchronous (see the module's documentation).
/// Source the tokenizer cannot follow (an unterminated string, say) is returned unchanged:
/// the build then reports the author's own syntax error.
pub fn rewrite(source: &str) -> String {
    let Some(tokens) = tokenize(source) else {
        return source.to_string();
    };
    let text = |t: &Token| &source[t.start..t.end];
    // (offset, text to insert) and ranges to blank out.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut blanks: Vec<(usize, usize)> = Vec::new();
    let mut replaced: Vec<(usize, usize, String)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.kind != Kind::Word {
            continue;
        }
        let next = tokens.get(i + 1);
        match text(token) {
            "async"
                if next.is_some_and(|n| {
                    !n.after_newline && starts_async_function(&tokens, i + 1, source)
                }) =>
            {
                blanks.push((token.start, token.end));
            }
            "await" => {
                let previous = i.checked_sub(1).map(|p| text(&tokens[p]));
                if previous == Some("for") {
                    // `for await (x of xs)`: the items are awaited where they are used.
                    blanks.push((token.start, token.end));
                    continue;
                }
                if previous == Some(".") || next.is_none_or(|n| is_expression_end(n, source)) {
                    continue; // a property named `await`, or `await` as a plain identifier
                }
                let end = unary_end(&tokens, i + 1, source);
                let Some(last) = end.checked_sub(1).and_then(|e| tokens.get(e)) else {
                    continue;
                };
                // `await x` → `__weft_await(x)`: the space goes too, unless it is a line break.
                let operand = tokens[i + 1].start;
                let keyword_end = if tokens[i + 1].after_newline {
                    token.end
                } else {
                    operand
                };
                replaced.push((token.start, keyword_end, format!("{AWAIT_FN}(")));
                inserts.push((last.end, ")".to_string()));
            }
            _ => {}
        }
    }
    let mut edits: Vec<(usize, usize, String)> = replaced;
    edits.extend(
        blanks
            .into_iter()
            .map(|(start, end)| (start, end, " ".repeat(end - start))),
    );
    edits.extend(inserts.into_iter().map(|(at, text)| (at, at, text)));
    // Apply from the end, so earlier offsets stay valid; at one offset, insertions (closing an
    // operand) go after the replacement that ends there.
    edits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = source.to_string();
    for (start, end, text) in edits {
        out.replace_range(start..end, &text);
    }
    out
}

/// Whether the tokens from `i` make the `async` before them a function's modifier:
/// `async function`, `async (…) =>`, `async x =>`, or a method `async name(…) {`.
fn starts_async_function(tokens: &[Token], i: usize, source: &str) -> bool {
    let text = |j: usize| tokens.get(j).map(|t| &source[t.start..t.end]);
    match text(i) {
        Some("function") => true,
        Some("(") => {
            // An arrow's parameters, or a call of a function named `async`.
            let close = matching(tokens, i);
            close.is_some_and(|c| text(c + 1) == Some("=>"))
        }
        Some("*" | "[") => true,
        Some(_) if tokens[i].kind == Kind::Word => {
            matches!(text(i + 1), Some("=>" | "("))
        }
        _ => false,
    }
}

/// Whether `token` cannot start an operand (so the `await` before it is an identifier).
fn is_expression_end(token: &Token, source: &str) -> bool {
    let text = &source[token.start..token.end];
    matches!(
        token.kind,
        Kind::Close | Kind::TemplateMiddle | Kind::TemplateTail
    ) || (token.kind == Kind::Punct && !matches!(text, "!" | "~" | "+" | "-" | "++" | "--" | "/"))
}

/// The index after the unary expression starting at token `i`.
fn unary_end(tokens: &[Token], i: usize, source: &str) -> usize {
    let Some(token) = tokens.get(i) else {
        return i;
    };
    let text = &source[token.start..token.end];
    match text {
        "!" | "~" | "+" | "-" | "++" | "--" | "typeof" | "void" | "delete" | "await" => {
            unary_end(tokens, i + 1, source)
        }
        _ => postfix_end(tokens, i, source),
    }
}

/// The index after the left-hand-side expression (primary, then members, calls and tagged
/// templates) starting at token `i`.
fn postfix_end(tokens: &[Token], i: usize, source: &str) -> usize {
    let text = |j: usize| tokens.get(j).map(|t| &source[t.start..t.end]);
    let mut at = match (tokens.get(i).map(|t| t.kind), text(i)) {
        (Some(Kind::Word), Some("new")) => {
            let callee = postfix_end_without_calls(tokens, i + 1, source);
            if text(callee) == Some("(") {
                matching(tokens, callee).map_or(callee, |c| c + 1)
            } else {
                callee
            }
        }
        (Some(Kind::Word), Some("function" | "class")) => {
            // Up to the end of its body: the first `{` group after the head.
            let mut j = i + 1;
            while j < tokens.len() && text(j) != Some("{") {
                j = match tokens[j].kind {
                    Kind::Open | Kind::TemplateHead => matching(tokens, j).map_or(j + 1, |c| c + 1),
                    _ => j + 1,
                };
            }
            matching(tokens, j).map_or(j, |c| c + 1)
        }
        (Some(Kind::Open | Kind::TemplateHead), _) => matching(tokens, i).map_or(i + 1, |c| c + 1),
        (Some(_), _) => i + 1,
        (None, _) => return i,
    };
    loop {
        match (tokens.get(at).map(|t| t.kind), text(at)) {
            (Some(Kind::Punct), Some(".")) => at += 2,
            (Some(Kind::Punct), Some("?.")) => {
                at += 1;
                at = match tokens.get(at).map(|t| t.kind) {
                    Some(Kind::Open) => matching(tokens, at).map_or(at + 1, |c| c + 1),
                    _ => at + 1,
                };
            }
            (Some(Kind::Open), Some("(" | "[")) => {
                if tokens[at].after_newline && text(at) == Some("(") {
                    break; // a new statement, most likely
                }
                at = matching(tokens, at).map_or(at + 1, |c| c + 1);
            }
            (Some(Kind::Template), _) => at += 1,
            (Some(Kind::TemplateHead), _) => {
                at = matching(tokens, at).map_or(at + 1, |c| c + 1);
            }
            _ => break,
        }
    }
    at.min(tokens.len())
}

/// `postfix_end` for the callee of `new`: members, but not the call (which is `new`'s).
fn postfix_end_without_calls(tokens: &[Token], i: usize, source: &str) -> usize {
    let text = |j: usize| tokens.get(j).map(|t| &source[t.start..t.end]);
    let mut at = match tokens.get(i).map(|t| t.kind) {
        Some(Kind::Open) => matching(tokens, i).map_or(i + 1, |c| c + 1),
        Some(_) => i + 1,
        None => return i,
    };
    while text(at) == Some(".") {
        at += 2;
    }
    at.min(tokens.len())
}

/// The index of the token that closes the group opened at `i`.
fn matching(tokens: &[Token], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, token) in tokens.iter().enumerate().skip(i) {
        match token.kind {
            Kind::Open | Kind::TemplateHead => depth += 1,
            Kind::Close | Kind::TemplateTail => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            Kind::TemplateMiddle if depth == 1 && j != i => {}
            _ => {}
        }
    }
    None
}

/// The tokens of `source`, or `None` where it cannot be followed.
fn tokenize(source: &str) -> Option<Vec<Token>> {
    let bytes = source.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    // For each open `{` (true) or template substitution (false), innermost last.
    let mut braces: Vec<bool> = Vec::new();
    let mut i = 0;
    let mut newline = false;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let push = |tokens: &mut Vec<Token>, kind, end, newline: &mut bool| {
            tokens.push(Token {
                kind,
                start,
                end,
                after_newline: *newline,
            });
            *newline = false;
        };
        match c {
            b'\n' | b'\r' => {
                newline = true;
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = source[i + 2..].find("*/")? + i + 4;
                if source[i..end].contains('\n') {
                    newline = true;
                }
                i = end;
            }
            b'\'' | b'"' => {
                i = string_end(bytes, i)?;
                push(&mut tokens, Kind::Literal, i, &mut newline);
            }
            b'`' => {
                let (end, opens) = template_part(bytes, i + 1)?;
                i = end;
                let kind = if opens {
                    braces.push(false);
                    Kind::TemplateHead
                } else {
                    Kind::Template
                };
                push(&mut tokens, kind, i, &mut newline);
            }
            b'}' if braces.last() == Some(&false) => {
                braces.pop();
                let (end, opens) = template_part(bytes, i + 1)?;
                i = end;
                let kind = if opens {
                    braces.push(false);
                    Kind::TemplateMiddle
                } else {
                    Kind::TemplateTail
                };
                push(&mut tokens, kind, i, &mut newline);
            }
            b'/' if regex_allowed(tokens.last(), source) => {
                i = regex_end(bytes, i)?;
                push(&mut tokens, Kind::Literal, i, &mut newline);
            }
            b'(' | b'[' | b'{' => {
                if c == b'{' {
                    braces.push(true);
                }
                i += 1;
                push(&mut tokens, Kind::Open, i, &mut newline);
            }
            b')' | b']' | b'}' => {
                if c == b'}' {
                    braces.pop();
                }
                i += 1;
                push(&mut tokens, Kind::Close, i, &mut newline);
            }
            b'0'..=b'9' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'_'))
                {
                    i += 1;
                }
                push(&mut tokens, Kind::Literal, i, &mut newline);
            }
            _ if c.is_ascii_alphabetic() || matches!(c, b'_' | b'$' | b'#') || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'$' | b'#')
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                push(&mut tokens, Kind::Word, i, &mut newline);
            }
            _ => {
                i += punctuator_len(&source[i..]);
                push(&mut tokens, Kind::Punct, i, &mut newline);
            }
        }
    }
    Some(tokens)
}

fn punctuator_len(rest: &str) -> usize {
    const LONGEST_FIRST: [&str; 21] = [
        ">>>=", "...", "===", "!==", "**=", ">>>", "<<=", ">>=", "&&=", "||=", "??=", "=>", "?.",
        "++", "--", "&&", "||", "??", "==", "!=", "**",
    ];
    LONGEST_FIRST
        .iter()
        .find(|p| rest.starts_with(**p))
        .map_or_else(
            || rest.chars().next().map_or(1, char::len_utf8),
            |p| p.len(),
        )
}

fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return None,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// From just inside a template literal: the end of this part, and whether it ends with `${`.
fn template_part(bytes: &[u8], mut i: usize) -> Option<(usize, bool)> {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'`' => return Some((i + 1, false)),
            b'$' if bytes.get(i + 1) == Some(&b'{') => return Some((i + 2, true)),
            _ => i += 1,
        }
    }
    None
}

fn regex_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return None,
            b'[' => {
                in_class = true;
                i += 1;
            }
            b']' => {
                in_class = false;
                i += 1;
            }
            b'/' if !in_class => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                return Some(i);
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether a `/` after `previous` starts a regular expression rather than a division.
fn regex_allowed(previous: Option<&Token>, source: &str) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    let text = &source[previous.start..previous.end];
    match previous.kind {
        Kind::Word => matches!(
            text,
            "return"
                | "typeof"
                | "instanceof"
                | "in"
                | "of"
                | "new"
                | "delete"
                | "void"
                | "throw"
                | "case"
                | "do"
                | "else"
                | "yield"
                | "await"
        ),
        Kind::Literal | Kind::Template | Kind::TemplateTail => false,
        Kind::Close => false,
        Kind::Open | Kind::Punct | Kind::TemplateHead | Kind::TemplateMiddle => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prismatic_signature_becomes_synchronous() {
        let source =
            "module.exports = async ({ configVars }, params) => {\n  return { data: 1 };\n};";
        assert_eq!(
            rewrite(source),
            "module.exports =       ({ configVars }, params) => {\n  return { data: 1 };\n};"
        );
    }

    #[test]
    fn await_takes_its_unary_operand() {
        for (source, expected) in [
            (
                "const x = await f(a, b);",
                "const x = __weft_await(f(a, b));",
            ),
            ("return await a + b;", "return __weft_await(a) + b;"),
            (
                "(await api.get(`/x/${id}`)).data",
                "(__weft_await(api.get(`/x/${id}`))).data",
            ),
            (
                "await new Promise((r) => r(1))",
                "__weft_await(new Promise((r) => r(1)))",
            ),
            ("await !ok", "__weft_await(!ok)"),
            (
                "await Promise.all(xs.map(async (x) => await g(x)))",
                "__weft_await(Promise.all(xs.map(      (x) => __weft_await(g(x)))))",
            ),
            ("`${await name()}!`", "`${__weft_await(name())}!`"),
            ("obj?.list?.[0]", "obj?.list?.[0]"),
        ] {
            assert_eq!(rewrite(source), expected, "{source}");
        }
    }

    #[test]
    fn strings_comments_regexes_and_other_words_are_left_alone() {
        for source in [
            "const s = 'await x'; // await y",
            "const r = /await\\/ x/g.test(s);",
            "/* async function f() {} */ const t = `async ${a}`;",
            "const async = 1; x.await = 2; f(async);",
            "async\nfunction f() {}",
            "a / b / c",
        ] {
            assert_eq!(rewrite(source), source, "{source}");
        }
    }

    #[test]
    fn async_functions_and_methods_lose_the_keyword_but_keep_their_columns() {
        let source = "class A { async get(x) { return await x; } }\nasync function* g() {}\nconst h = async x => x;";
        let out = rewrite(source);
        assert_eq!(
            out,
            "class A {       get(x) { return __weft_await(x); } }\n      function* g() {}\nconst h =       x => x;"
        );
        assert_eq!(out.lines().count(), source.lines().count());
    }

    #[test]
    fn source_it_cannot_follow_is_left_for_the_build_to_report() {
        let source = "const s = 'unterminated;\nawait x;";
        assert_eq!(rewrite(source), source);
    }
}
