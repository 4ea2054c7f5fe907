//! Plugins shipped inside the `weft` binary, built from `plugins/` by `engine/build.rs`.
//!
//! A workspace may use them by name without declaring them, or declare them with
//! `source = "builtin:NAME"`.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component bytes of built-in plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of all built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// The manifest of built-in plugin `name`.
pub fn manifest(name: &str) -> Option<&'static str> {
    MANIFESTS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}
