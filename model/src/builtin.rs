//! The manifests of the plugins shipped inside the `weft` binary.
//!
//! Validation needs to know what a built-in plugin declares (its inputs, what it may request)
//! without loading it; the components themselves are embedded by the engine. The engine's
//! tests check that both lists name the same plugins.

/// Built-in plugins' manifests: (the name steps use, TOML).
const MANIFESTS: &[(&str, &str)] = &[
    (
        "path-helper",
        include_str!("../../plugins/path-helper/plugin.toml"),
    ),
    (
        "http-get",
        include_str!("../../plugins/http-get/plugin.toml"),
    ),
    (
        "http-request",
        include_str!("../../plugins/http-request/plugin.toml"),
    ),
    (
        "s3-put-object",
        include_str!("../../plugins/s3-put-object/plugin.toml"),
    ),
];

/// The names of all built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    MANIFESTS.iter().map(|(name, _)| *name)
}

/// Whether `name` is a built-in plugin.
pub fn is_builtin(name: &str) -> bool {
    names().any(|n| n == name)
}

/// The manifest of built-in plugin `name`.
pub fn manifest(name: &str) -> Option<&'static str> {
    MANIFESTS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}
