//! A component that exports `greet` instead of a step's `run`.

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package example:greeter@1.0.0;
            world greeter {
                export greet: func(name: string) -> string;
            }
        "#,
    });
}

struct Greeter;

impl bindings::Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

bindings::export!(Greeter with_types_in bindings);
