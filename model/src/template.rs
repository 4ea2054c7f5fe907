//! Step input templates: `{{ config.customerName }}.png`, `{{ steps.get_data.results.items[0] }}`.
//!
//! A string that is exactly one reference (`"{{ steps.get_avatar.results }}"`) keeps the type of
//! the value it names, bytes included. A string with references among other text is
//! interpolated into a string. Objects and arrays are templated element by element.

use std::fmt;

use serde_json::Value as Json;

use crate::value::Val;

/// The names a reference may start with.
pub const ROOTS: [&str; 5] = ["config", "steps", "trigger", "instance", "customer"];

/// One step of a path: `.name`, `["name"]` or `[3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A reference such as `steps.get_data.results.sprites.front_default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The first name: one of [`ROOTS`].
    pub root: String,
    /// Everything after the root.
    pub segments: Vec<Segment>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for segment in &self.segments {
            match segment {
                Segment::Key(key) if is_plain_key(key) => write!(f, ".{key}")?,
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text copied as-is.
    Text(String),
    /// A reference whose value is written as text.
    Ref(Path),
}

/// A compiled input template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value with no references in it.
    Literal(Json),
    /// A string that is exactly one reference: the value keeps its type.
    Whole(Path),
    /// A string with references inside text: always produces a string.
    Text(Vec<Part>),
    /// An array whose elements are templates.
    Array(Vec<Template>),
    /// An object whose values are templates.
    Object(Vec<(String, Template)>),
}

/// Why a template could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} in `{source_text}`")]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// The template text that was being compiled.
    pub source_text: String,
}

/// Why a template could not be rendered against a context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl Template {
    /// Compiles a JSON value from an integration file, looking for `{{ … }}` in every string.
    pub fn compile(value: &Json) -> Result<Template, TemplateError> {
        Template::compile_with_roots(value, &ROOTS)
    }

    /// Compiles like [`Template::compile`], with references allowed to start with any of
    /// `roots` (inside a loop: [`ROOTS`], `loop` and the names of the loops around it).
    pub fn compile_with_roots(value: &Json, roots: &[&str]) -> Result<Template, TemplateError> {
        Ok(match value {
            Json::String(s) => compile_string(s, roots)?,
            Json::Array(items) => {
                let items = items
                    .iter()
                    .map(|item| Template::compile_with_roots(item, roots))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(items)
                }
            }
            Json::Object(map) => {
                let fields = map
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Template::compile_with_roots(v, roots)?)))
                    .collect::<Result<Vec<_>, TemplateError>>()?;
                if fields
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(fields)
                }
            }
            other => Template::Literal(other.clone()),
        })
    }

    /// Every reference in the template, in order.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut out);
        out
    }

    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Template::Literal(_) => {}
            Template::Whole(path) => out.push(path),
            Template::Text(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Ref(path) => Some(path),
                Part::Text(_) => None,
            })),
            Template::Array(items) => items.iter().for_each(|t| t.collect_paths(out)),
            Template::Object(fields) => fields.iter().for_each(|(_, t)| t.collect_paths(out)),
        }
    }

    /// Renders the template, looking references up with `lookup`.
    pub fn render(
        &self,
        lookup: &dyn Fn(&Path) -> Result<Val, RenderError>,
    ) -> Result<Val, RenderError> {
        match self {
            Template::Literal(v) => Ok(Val::Json(v.clone())),
            Template::Whole(path) => lookup(path),
            Template::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(text) => out.push_str(text),
                        Part::Ref(path) => match lookup(path)? {
                            Val::Json(Json::String(s)) => out.push_str(&s),
                            Val::Json(Json::Null) => {}
                            Val::Json(other) => out.push_str(&other.to_string()),
                            Val::Bytes { content_type, data } => {
                                return Err(RenderError(format!(
                                    "`{path}` is binary ({content_type}, {} bytes) and cannot be written into text; reference it as the whole value instead",
                                    data.len()
                                )));
                            }
                        },
                    }
                }
                Ok(Val::Json(Json::String(out)))
            }
            Template::Array(items) => items
                .iter()
                .map(|t| t.render(lookup).and_then(nested_json))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| Val::Json(Json::Array(items))),
            Template::Object(fields) => fields
                .iter()
                .map(|(k, t)| Ok((k.clone(), t.render(lookup).and_then(nested_json)?)))
                .collect::<Result<serde_json::Map<_, _>, RenderError>>()
                .map(|map| Val::Json(Json::Object(map))),
        }
    }
}

fn nested_json(val: Val) -> Result<Json, RenderError> {
    match val {
        Val::Json(v) => Ok(v),
        Val::Bytes { content_type, data } => Err(RenderError(format!(
            "a binary value ({content_type}, {} bytes) cannot be placed inside an object or array; pass it as an input of its own",
            data.len()
        ))),
    }
}

fn compile_string(s: &str, roots: &[&str]) -> Result<Template, TemplateError> {
    let err = |message: String| TemplateError {
        message,
        source_text: s.to_string(),
    };
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| err("`{{` is never closed with `}}`".into()))?;
        let inner = after[..close].trim();
        let path = parse_path_in(inner, roots).map_err(err)?;
        parts.push(Part::Ref(path));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(err("`}}` without a matching `{{`".into()));
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(match parts.as_slice() {
        [] => Template::Literal(Json::String(String::new())),
        [Part::Text(_)] => Template::Literal(Json::String(s.to_string())),
        [Part::Ref(path)] => Template::Whole(path.clone()),
        _ => Template::Text(parts),
    })
}

/// Parses a reference like `steps.get_data.results.items[0]["odd key"]`.
pub fn parse_path(text: &str) -> Result<Path, String> {
    parse_path_in(text, &ROOTS)
}

/// Parses a reference that may start with any of `roots`.
pub fn parse_path_in(text: &str, roots: &[&str]) -> Result<Path, String> {
    if text.is_empty() {
        return Err("empty reference `{{ }}`".into());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let read_name = |i: &mut usize| -> String {
        let start = *i;
        while *i < bytes.len()
            && (bytes[*i].is_ascii_alphanumeric() || bytes[*i] == b'_' || bytes[*i] == b'-')
        {
            *i += 1;
        }
        text[start..*i].to_string()
    };
    let root = read_name(&mut i);
    if root.is_empty() {
        return Err(format!("reference `{text}` must start with a name"));
    }
    if !roots.contains(&root.as_str()) {
        return Err(format!(
            "reference `{text}` starts with `{root}`; it must start with one of {}",
            roots
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut segments = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                i += 1;
                let name = read_name(&mut i);
                if name.is_empty() {
                    return Err(format!("reference `{text}` has an empty name after `.`"));
                }
                segments.push(Segment::Key(name));
            }
            b'[' => {
                let close = text[i..]
                    .find(']')
                    .map(|c| i + c)
                    .ok_or_else(|| format!("reference `{text}` has `[` without `]`"))?;
                let inner = text[i + 1..close].trim();
                let segment = if let Some(quoted) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    Segment::Key(quoted.to_string())
                } else {
                    Segment::Index(inner.parse().map_err(|_| {
                        format!(
                            "reference `{text}` has `[{inner}]`; use a whole number like `[0]` or a quoted key like `[\"name\"]`"
                        )
                    })?)
                };
                segments.push(segment);
                i = close + 1;
            }
            other => {
                return Err(format!(
                    "reference `{text}` has an unexpected `{}` at position {}",
                    other as char,
                    i + 1
                ));
            }
        }
    }
    Ok(Path { root, segments })
}

/// Follows `segments` into a JSON value; `Err` says where the path stopped matching.
pub fn walk<'a>(
    value: &'a Json,
    path: &Path,
    segments: &[Segment],
) -> Result<&'a Json, RenderError> {
    let mut current = value;
    for (n, segment) in segments.iter().enumerate() {
        let next = match (segment, current) {
            (Segment::Key(key), Json::Object(map)) => map.get(key),
            (Segment::Index(i), Json::Array(items)) => items.get(*i),
            _ => None,
        };
        current = next.ok_or_else(|| {
            let found = match current {
                Json::Object(map) if map.is_empty() => "an empty object".to_string(),
                Json::Object(map) => format!(
                    "an object with keys {}",
                    map.keys()
                        .take(8)
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Json::Array(items) => format!("an array of {} items", items.len()),
                Json::String(_) => "a string".into(),
                Json::Number(_) => "a number".into(),
                Json::Bool(_) => "a boolean".into(),
                Json::Null => "null".into(),
            };
            let prefix = Path {
                root: path.root.clone(),
                segments: path.segments[..path.segments.len() - segments.len() + n].to_vec(),
            };
            RenderError(format!(
                "`{path}` not found: `{prefix}` is {found}, with no {}",
                match segment {
                    Segment::Key(k) => format!("key `{k}`"),
                    Segment::Index(i) => format!("item [{i}]"),
                }
            ))
        })?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup_in(ctx: Json) -> impl Fn(&Path) -> Result<Val, RenderError> {
        move |path: &Path| {
            let root = ctx.get(&path.root).cloned().unwrap_or(Json::Null);
            walk(&root, path, &path.segments).map(|v| Val::Json(v.clone()))
        }
    }

    #[test]
    fn whole_reference_keeps_type() {
        let t = Template::compile(&json!("{{ steps.a.results.items }}")).unwrap();
        let ctx = json!({ "steps": { "a": { "results": { "items": [1, 2] } } } });
        assert_eq!(t.render(&lookup_in(ctx)).unwrap(), Val::Json(json!([1, 2])));
    }

    #[test]
    fn interpolation_makes_text() {
        let t = Template::compile(&json!("{{config.name}}.png ({{ config.n }})")).unwrap();
        let ctx = json!({ "config": { "name": "FTL Rockets", "n": 3 } });
        assert_eq!(
            t.render(&lookup_in(ctx)).unwrap(),
            Val::Json(json!("FTL Rockets.png (3)"))
        );
    }

    #[test]
    fn paths_with_indexes_and_quoted_keys() {
        let p = parse_path(r#"steps.x.results.items[2]["odd key"].y"#).unwrap();
        assert_eq!(p.to_string(), r#"steps.x.results.items[2]["odd key"].y"#);
        assert_eq!(p.segments[3], Segment::Index(2));
    }

    #[test]
    fn malformed_templates_say_why() {
        let e = Template::compile(&json!("{{ config.x ")).unwrap_err();
        assert!(e.to_string().contains("never closed"), "{e}");
        let e = Template::compile(&json!("{{ secrets.x }}")).unwrap_err();
        assert!(e.to_string().contains("must start with one of"), "{e}");
        let e = Template::compile(&json!("{{ config.x[a] }}")).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
    }

    #[test]
    fn missing_path_names_where_it_stopped() {
        let t = Template::compile(&json!("{{ steps.a.results.sprites.front }}")).unwrap();
        let ctx = json!({ "steps": { "a": { "results": { "sprites": { "back": "x" } } } } });
        let e = t.render(&lookup_in(ctx)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`steps.a.results.sprites.front` not found: `steps.a.results.sprites` is an object with keys `back`, with no key `front`"
        );
    }

    #[test]
    fn nested_objects_are_templated() {
        let t = Template::compile(&json!({ "h": ["{{ config.a }}", 1] })).unwrap();
        let ctx = json!({ "config": { "a": true } });
        assert_eq!(
            t.render(&lookup_in(ctx)).unwrap(),
            Val::Json(json!({ "h": [true, 1] }))
        );
    }
}
