//! Targets `weft:step@0.2.0`, a version this engine does not serve.

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package weft:step@0.2.0;
            interface config {
                get: func(name: string) -> option<string>;
            }
            world step {
                import config;
                export run: func() -> string;
            }
        "#,
    });
}

struct Future;

impl bindings::Guest for Future {
    fn run() -> String {
        bindings::weft::step::config::get("x").unwrap_or_default()
    }
}

bindings::export!(Future with_types_in bindings);
