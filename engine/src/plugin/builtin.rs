//! Plugins shipped inside the `weft` binary, built from `plugins/` by `engine/build.rs`.
//!
//! A workspace may use them by name without declaring them, or declare them with
//! `source = "builtin:NAME"`. Their manifests are in [`weft_model::builtin`], which validation
//! reads without loading a component.

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

#[cfg(test)]
mod tests {
    #[test]
    fn every_embedded_plugin_has_the_models_manifest_and_no_other() {
        let embedded: Vec<&str> = super::names().collect();
        let declared: Vec<&str> = weft_model::builtin::names().collect();
        assert_eq!(embedded, declared);
    }
}
