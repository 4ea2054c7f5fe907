//! Conditions: the `if`, `when`, `while` and `break_if` of flow control, written in CEL (the
//! Common Expression Language of Kubernetes, Envoy and Google IAM).
//!
//! CEL is sandboxed and deterministic: it has no clock, random numbers or I/O, so a replay
//! decides every branch and loop the way the run did. A condition sees the roots templates see
//! (`config`, `steps`, `trigger`, `instance`, `customer`) and, inside a loop, `item`, `index`,
//! `previous` (the iteration before's results by step id) and the `as` names of the loops
//! around it. (`loop` is a reserved word in CEL, so
//! conditions cannot use the `loop.` prefix templates use.)

use std::fmt;
use std::sync::Arc;

use serde_json::Value as Json;

/// The longest condition, in bytes: a bound on what reaches the parser.
pub const MAX_LENGTH: usize = 4096;
/// The deepest nesting of brackets in a condition.
pub const MAX_NESTING: usize = 32;

/// A condition that parsed.
#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Arc<cel::Program>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// Why a condition does not parse, with where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    /// The line of the problem.
    pub line: usize,
    /// The column of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// A `steps.<id>.<field>` a condition reads, for checking it against the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReference {
    /// The step's id.
    pub step: String,
    /// What follows the id (`results`, `branch`, `errors`), when anything does.
    pub field: Option<String>,
    /// Where the reference is.
    pub line: usize,
    /// Where the reference is.
    pub column: usize,
}

impl Condition {
    /// Parses `source`, refusing one longer than [`MAX_LENGTH`] or nested deeper than
    /// [`MAX_NESTING`] before the parser sees it.
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        if source.len() > MAX_LENGTH {
            return Err(ConditionError {
                line: 1,
                column: 1,
                message: format!(
                    "the expression is {} bytes long; the most is {MAX_LENGTH}",
                    source.len()
                ),
            });
        }
        if source.trim().is_empty() {
            return Err(ConditionError {
                line: 1,
                column: 1,
                message: "the expression is empty".into(),
            });
        }
        let mut depth = 0usize;
        for (offset, c) in source.char_indices() {
            match c {
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        let (line, column) = position(source, offset);
                        return Err(ConditionError {
                            line,
                            column,
                            message: format!(
                                "the expression nests deeper than {MAX_NESTING} brackets"
                            ),
                        });
                    }
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        // The parser panics on some malformed input in its error recovery; a panic is a parse
        // error like any other to the author.
        let parsed = std::panic::catch_unwind(|| cel::Program::compile(source)).map_err(|_| {
            ConditionError {
                line: 1,
                column: 1,
                message: "the expression could not be parsed".into(),
            }
        })?;
        let program = parsed.map_err(|errors| {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| (e.pos.0 as usize, e.pos.1 as usize));
            ConditionError {
                line: line.max(1),
                column: column.max(1),
                message: first
                    .map(|e| e.msg.clone())
                    .unwrap_or_else(|| "the expression could not be parsed".into()),
            }
        })?;
        Ok(Condition {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every `steps.<id>` the expression reads.
    pub fn step_references(&self) -> Vec<StepReference> {
        use cel::common::ast::Expr;
        let offsets = self.program.source_info();
        let mut out = Vec::new();
        let mut stack = vec![self.program.expression()];
        while let Some(node) = stack.pop() {
            match &node.expr {
                Expr::Select(select) => {
                    if let Expr::Ident(root) = &select.operand.expr
                        && root == "steps"
                    {
                        out.push(self.reference(offsets, node.id, &select.field, None));
                    } else if let Expr::Select(inner) = &select.operand.expr
                        && let Expr::Ident(root) = &inner.operand.expr
                        && root == "steps"
                    {
                        out.push(self.reference(
                            offsets,
                            select.operand.id,
                            &inner.field,
                            Some(select.field.clone()),
                        ));
                        continue;
                    }
                    stack.push(&select.operand);
                }
                Expr::Call(call) => {
                    stack.extend(call.target.as_deref());
                    stack.extend(call.args.iter());
                }
                Expr::Comprehension(c) => stack.extend([
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ]),
                Expr::List(list) => stack.extend(list.elements.iter()),
                Expr::Map(map) => {
                    for entry in &map.entries {
                        if let cel::common::ast::EntryExpr::MapEntry(e) = &entry.expr {
                            stack.push(&e.key);
                            stack.push(&e.value);
                        }
                    }
                }
                Expr::Struct(s) => {
                    for entry in &s.entries {
                        if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                            stack.push(&f.value);
                        }
                    }
                }
                Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
            }
        }
        out.sort_by_key(|r| (r.line, r.column));
        out
    }

    fn reference(
        &self,
        offsets: &cel::common::ast::SourceInfo,
        id: u64,
        step: &str,
        field: Option<String>,
    ) -> StepReference {
        let offset = offsets
            .offset_for(id)
            .map_or(0, |(start, _)| start as usize);
        let (line, column) = position(&self.source, offset);
        StepReference {
            step: step.to_string(),
            field,
            line,
            column,
        }
    }

    /// The root names the expression reads that are not bound by a macro inside it (`e` in
    /// `items.exists(e, e > 2)` is bound).
    pub fn roots(&self) -> Vec<String> {
        let mut bound = Vec::new();
        let mut stack = vec![self.program.expression()];
        use cel::common::ast::Expr;
        while let Some(node) = stack.pop() {
            if let Expr::Comprehension(c) = &node.expr {
                bound.push(c.iter_var.clone());
                bound.extend(c.iter_var2.clone());
                bound.push(c.accu_var.clone());
                stack.extend([
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ]);
            } else if let Expr::Select(s) = &node.expr {
                stack.push(&s.operand);
            } else if let Expr::Call(call) = &node.expr {
                stack.extend(call.target.as_deref());
                stack.extend(call.args.iter());
            } else if let Expr::List(list) = &node.expr {
                stack.extend(list.elements.iter());
            } else if let Expr::Map(map) = &node.expr {
                for entry in &map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(e) = &entry.expr {
                        stack.push(&e.key);
                        stack.push(&e.value);
                    }
                }
            }
        }
        let mut roots: Vec<String> = self
            .program
            .references()
            .variables()
            .into_iter()
            .map(str::to_string)
            .filter(|name| !bound.contains(name))
            .collect();
        roots.sort();
        roots.dedup();
        roots
    }

    /// Evaluates the expression with `variables` bound, to a boolean; anything else, or an
    /// error (a missing field, a type mismatch), is described for the run's error.
    pub fn decide(&self, variables: &[(&str, &Json)]) -> Result<bool, String> {
        match self.evaluate(variables)? {
            Json::Bool(decision) => Ok(decision),
            other => Err(format!(
                "`{}` gave {} where a boolean (true or false) was needed",
                self.source,
                describe(&other)
            )),
        }
    }

    /// Evaluates the expression with `variables` bound.
    pub fn evaluate(&self, variables: &[(&str, &Json)]) -> Result<Json, String> {
        let mut context = cel::Context::default();
        for (name, value) in variables {
            context
                .add_variable(*name, *value)
                .map_err(|e| format!("`{}`: variable `{name}` is not usable: {e}", self.source))?;
        }
        let value = self.program.execute(&context).map_err(|e| {
            let hint = match &e {
                cel::ExecutionError::NoSuchKey(_) | cel::ExecutionError::UndeclaredReference(_) => {
                    " (guard optional fields with `has(…)`)"
                }
                _ => "",
            };
            format!("`{}` could not be evaluated: {e}{hint}", self.source)
        })?;
        value
            .json()
            .map_err(|e| format!("`{}` gave a value JSON cannot hold: {e}", self.source))
    }
}

/// A value as an error message shows it: its type and, when short, itself.
fn describe(value: &Json) -> String {
    let kind = match value {
        Json::Null => return "null".into(),
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    };
    let text = value.to_string();
    if text.len() <= 60 {
        format!("{kind}, {text}")
    } else {
        kind.to_string()
    }
}

/// The 1-based line and column of byte `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_condition_decides_on_the_values_it_is_given() {
        let c = Condition::compile("steps.get.results.status == 404 && has(item.email)").unwrap();
        let steps = json!({ "get": { "results": { "status": 404 } } });
        let item = json!({ "email": "a@b.c" });
        assert_eq!(c.decide(&[("steps", &steps), ("item", &item)]), Ok(true));
        let item = json!({});
        assert_eq!(c.decide(&[("steps", &steps), ("item", &item)]), Ok(false));
    }

    #[test]
    fn a_syntax_error_says_where() {
        let e = Condition::compile("a.b ==\n  && c").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3), "{e}");
    }

    #[test]
    fn a_value_that_is_not_a_boolean_is_named() {
        let c = Condition::compile("size(trigger.items)").unwrap();
        let trigger = json!({ "items": [1, 2] });
        let e = c.decide(&[("trigger", &trigger)]).unwrap_err();
        assert!(e.contains("gave a number, 2 where a boolean"), "{e}");
    }

    #[test]
    fn a_missing_field_says_to_guard_it() {
        let c = Condition::compile("trigger.nope == 1").unwrap();
        let trigger = json!({});
        let e = c.decide(&[("trigger", &trigger)]).unwrap_err();
        assert!(e.contains("has("), "{e}");
    }

    #[test]
    fn long_and_deep_expressions_are_refused_before_parsing() {
        let long = "1 == 1 && ".repeat(500) + "true";
        assert!(
            Condition::compile(&long)
                .unwrap_err()
                .message
                .contains("bytes long")
        );
        let deep = "(".repeat(40) + "true" + &")".repeat(40);
        assert!(
            Condition::compile(&deep)
                .unwrap_err()
                .message
                .contains("nests deeper")
        );
    }

    #[test]
    fn step_references_and_roots_are_found() {
        let c = Condition::compile(
            "steps.a.results.x > 1 || steps.b.branch == 'y' || trigger.list.exists(e, e == index)",
        )
        .unwrap();
        let refs: Vec<_> = c
            .step_references()
            .into_iter()
            .map(|r| (r.step, r.field))
            .collect();
        assert_eq!(
            refs,
            [
                ("a".to_string(), Some("results".to_string())),
                ("b".to_string(), Some("branch".to_string()))
            ]
        );
        assert_eq!(c.roots(), ["index", "steps", "trigger"]);
    }
}
