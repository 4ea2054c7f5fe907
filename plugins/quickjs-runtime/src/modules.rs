//! The step's modules for QuickJS's loader: the runtime wrapper, the prelude and the step,
//! found by name (`./step.js` from any module is `step.js`); nothing else can be imported.

use std::collections::HashMap;

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Module};

/// The step's modules by name; `./x.js` from any module names `x.js`.
#[derive(Clone)]
pub struct Modules(pub HashMap<String, String>);

impl Resolver for Modules {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        let plain = name.trim_start_matches("./");
        if self.0.contains_key(plain) {
            Ok(plain.to_string())
        } else {
            Err(rquickjs::Error::new_resolving(base, name))
        }
    }
}

impl Loader for Modules {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        let source = self
            .0
            .get(name)
            .ok_or_else(|| rquickjs::Error::new_loading(name))?;
        Module::declare(ctx.clone(), name, source.as_str())
    }
}
