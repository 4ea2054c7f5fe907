//! Turning a code-step build tool's output into the error its author needs.

use std::path::Path;

use super::Language;

/// Turns the tool's output into what the author needs: the error, with the file, line and
/// column in the author's own file, without the tool's own stack.
pub(super) fn explain(
    language: Language,
    log: &str,
    file_name: &str,
    shift: usize,
    scratch: &str,
) -> String {
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
    let text = relevant
        .join("\n")
        .replace(&format!("{scratch}/{file_name}"), file_name)
        // componentize-py mounts the Python path at `/0`.
        .replace(&format!("/0/{file_name}"), file_name)
        .replace(&format!("{scratch}/"), "");
    finish(&text, file_name, shift)
}

/// The QuickJS runtime's report of an exception while the modules were evaluated (a syntax
/// error, or a throw at the top level): the error and the author's frames, without the runtime's
/// own frames or the build's chain of contexts.
pub(super) fn quickjs(log: &str, file_name: &str, shift: usize) -> String {
    // The build's chain of contexts before the exception itself.
    let mut log = log.trim_start_matches([':', ' ', '\n']);
    for context in [
        "Failed to evaluate user JavaScript module: ",
        "Failed to finish JavaScript module evaluation: ",
    ] {
        log = log.trim_start_matches(context);
    }
    let log = log.replace(&format!("/{file_name}"), file_name);
    // A module that does not parse: `Error: MESSAGE\n    at FILE:LINE:COLUMN`, said here as
    // the syntax error it is, where it is.
    if let Some(rest) = log.strip_prefix("Failed to declare JavaScript module: ") {
        let message = rest.lines().next().unwrap_or_default();
        let message = message.strip_prefix("Error: ").unwrap_or(message);
        let place = rest
            .lines()
            .filter_map(|l| l.trim().strip_prefix("at "))
            .find(|p| p.starts_with(file_name));
        let text = match place {
            Some(place) => format!("{place}: SyntaxError: {message}"),
            None => format!("SyntaxError: {message}"),
        };
        return finish(&text, file_name, shift);
    }
    let text: Vec<&str> = log
        .lines()
        .filter(|line| !line.contains(super::JS_RUNTIME_FILE) && !line.contains("<input>"))
        .collect();
    finish(&text.join("\n"), file_name, shift)
}

/// Puts line 1's columns back where the author wrote them and trims the report.
fn finish(text: &str, file_name: &str, shift: usize) -> String {
    let text = if shift == 0 {
        text.to_string()
    } else {
        unshift_line1(text, file_name, shift)
    };
    let text = text.trim();
    if text.is_empty() {
        "the tool failed without saying why".into()
    } else {
        text.to_string()
    }
}

/// `file:1:COLUMN` → `file:1:(COLUMN - shift)`, wherever it appears.
fn unshift_line1(text: &str, file_name: &str, shift: usize) -> String {
    let marker = format!("{file_name}:1:");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&marker) {
        let (before, after) = rest.split_at(at + marker.len());
        out.push_str(before);
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(column) => out.push_str(&column.saturating_sub(shift).max(1).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// A compile error's `file_name` references as `source`'s path, for `weft build`.
pub(super) fn in_source(message: &str, file_name: &str, source: &Path) -> String {
    let display = source.display().to_string();
    message
        .replace(&format!("{file_name}:"), &format!("{display}:"))
        .replace(&format!("\"{file_name}\""), &format!("\"{display}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_the_authors_file() {
        let log = "Error: Failed to initialize component (wizer):\nException while evaluating top-level script\nstep.js:2:14 SyntaxError: expected expression, got '}':\nstep.js:2:14   return {a: };\n    at componentize (file:///x/componentize.js:365:11)\n";
        let text = explain(Language::JavaScript, log, "step.js", 0, "/tmp/weft-build-x");
        let text = in_source(&text, "step.js", Path::new("steps/step.js"));
        assert!(
            text.starts_with("steps/step.js:2:14 SyntaxError: expected expression"),
            "{text}"
        );
        assert!(!text.contains("componentize.js"), "{text}");
    }

    #[test]
    fn a_quickjs_syntax_error_says_where_it_is() {
        let log = ": Failed to declare JavaScript module: Error: unexpected token in expression: '}'\n    at /step.js:2:17\n";
        assert_eq!(
            quickjs(log, "step.js", 0),
            "step.js:2:17: SyntaxError: unexpected token in expression: '}'"
        );
    }

    #[test]
    fn columns_on_line_one_are_the_authors() {
        assert_eq!(
            unshift_line1("at run (step.js:1:150) and step.js:12:3", "step.js", 100),
            "at run (step.js:1:50) and step.js:12:3"
        );
    }
}
