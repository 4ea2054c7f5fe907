//! `weft:step/config`: read-only access to the running instance's resolved config vars.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::bindings::weft::step::config;

/// The config vars a step may read, by name, as text. Shared by every step of a run.
#[derive(Clone, Default)]
pub struct ConfigVars {
    vars: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for ConfigVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secret; names are enough to debug with.
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl ConfigVars {
    /// Wraps the resolved vars.
    pub fn new(vars: BTreeMap<String, String>) -> Self {
        Self {
            vars: Arc::new(vars),
        }
    }

    /// Only the vars named in `names`.
    pub fn only(&self, names: &[String]) -> Self {
        self.vars
            .iter()
            .filter(|(k, _)| names.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl FromIterator<(String, String)> for ConfigVars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

impl config::Host for ConfigVars {
    fn get(&mut self, name: String) -> Option<String> {
        self.vars.get(&name).cloned()
    }

    fn names(&mut self) -> Vec<String> {
        self.vars.keys().cloned().collect()
    }
}

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = &'a mut ConfigVars;
}

/// Adds `weft:step/config` to `linker`, reading vars through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigVars,
) -> wasmtime::Result<()> {
    config::add_to_linker::<T, HasConfig>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::Host;

    #[test]
    fn only_bound_vars_are_visible() {
        let mut vars: ConfigVars = [("customerName".to_string(), "FTL Rockets".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            vars.get("customerName".into()).as_deref(),
            Some("FTL Rockets")
        );
        assert_eq!(vars.get("awsSecret".into()), None);
        assert_eq!(vars.names(), ["customerName"]);
        assert_eq!(format!("{vars:?}"), r#"{"customerName"}"#);
    }
}
