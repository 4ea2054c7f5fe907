//! Template text: compiled, and when it compiles, rendered against a small context. Any input
//! must give a template or an error, and a rendering or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use weft_model::template::{Template, walk};
use weft_model::value::Val;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let context = json!({
        "config": { "customerName": "FTL Rockets", "n": 3, "list": [1, { "deep": "x" }] },
        "steps": { "a": { "results": { "sprites": { "front_default": "u" }, "k w": [true] } } },
    });
    for value in [json!(text), json!({ "nested": [text] })] {
        let Ok(template) = Template::compile(&value) else {
            continue;
        };
        let _ = template.paths();
        let _ = template.render(&|path| {
            let root = context
                .get(path.root.as_str())
                .ok_or_else(|| weft_model::template::RenderError("no root".into()))?;
            walk(root, path, &path.segments).map(|v| Val::Json(v.clone()))
        });
    }
});
