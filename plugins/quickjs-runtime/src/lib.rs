//! Weft's QuickJS step runtime: one statically linked module with QuickJS and the `weft:step`
//! bindings. `weft` pre-initializes it (wizer) with a step's modules evaluated by
//! `init`; every execution then starts from that snapshot and calls `run`.

mod host;
mod modules;
mod values;

use std::cell::RefCell;

use rquickjs::{Context, Function, Module, Persistent, Runtime, Value as JsValue};

use modules::Modules;

wit_bindgen::generate!({
    world: "weft:quickjs/runtime",
    path: ["../../wit", "wit"],
    generate_all,
});

use crate::Value as StepValue;
use exports::weft::quickjs::init as quickjs_init;
use weft::step::types::ErrorKind;

/// The engine, its context and the step's `run`, created by `init` and kept by the snapshot.
struct Engine {
    /// Owns the context; never used after `init`, but must live as long as it.
    _runtime: Runtime,
    context: Context,
    run: Persistent<Function<'static>>,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

struct QuickJs;

impl quickjs_init::Guest for QuickJs {
    fn init(modules: Vec<(String, String)>, entry: String) -> Result<(), String> {
        let modules = Modules(modules.into_iter().collect());
        let source = modules
            .0
            .get(&entry)
            .cloned()
            .ok_or_else(|| format!("no module named `{entry}`"))?;
        let runtime = Runtime::new().map_err(|e| e.to_string())?;
        runtime.set_loader(modules.clone(), modules);
        // Half the module's 1 MiB stack (the wasm32 default): deep recursion is a RangeError
        // thrown by QuickJS before it could run past the stack into the heap.
        runtime.set_max_stack_size(512 * 1024);
        let context = Context::full(&runtime).map_err(|e| e.to_string())?;
        let run = context.with(|ctx| -> Result<_, String> {
            host::install(&ctx).map_err(|e| e.to_string())?;
            let evaluated = Module::declare(ctx.clone(), entry.as_str(), source)
                .and_then(|declared| declared.eval())
                .and_then(|(module, promise)| {
                    while ctx.execute_pending_job() {}
                    promise.finish::<()>()?;
                    module.get::<_, Function>("run")
                });
            match evaluated {
                Ok(run) => Ok(Persistent::save(&ctx, run)),
                Err(rquickjs::Error::Exception) => Err(values::exception_report(&ctx.catch())),
                Err(error) => Err(error.to_string()),
            }
        })?;
        // Collect what evaluating left behind, so the snapshot holds only live objects and an
        // execution does not start with a collection already due.
        runtime.run_gc();
        ENGINE.with(|engine| {
            *engine.borrow_mut() = Some(Engine {
                _runtime: runtime,
                context,
                run,
            })
        });
        Ok(())
    }
}

impl Guest for QuickJs {
    fn run(inputs: Vec<(String, StepValue)>) -> Result<StepValue, StepError> {
        ENGINE.with(|engine| {
            let engine = engine.borrow();
            let engine = engine.as_ref().ok_or_else(|| StepError {
                kind: ErrorKind::Internal,
                message: "the JavaScript step was not initialized at build time".into(),
                retryable: false,
            })?;
            engine.context.with(|ctx| {
                let run = engine.run.clone().restore(&ctx).map_err(internal)?;
                let inputs = values::inputs(&ctx, inputs).map_err(internal)?;
                let out: Result<JsValue, _> = run.call((inputs,));
                while ctx.execute_pending_job() {}
                match out {
                    Ok(value) => values::settled(&ctx, value),
                    Err(rquickjs::Error::Exception) => Err(values::thrown(&ctx, ctx.catch())),
                    Err(e) => Err(internal(e)),
                }
            })
        })
    }
}

fn internal(error: impl std::fmt::Display) -> StepError {
    StepError {
        kind: ErrorKind::Internal,
        message: format!("the JavaScript runtime failed: {error}"),
        retryable: false,
    }
}

export!(QuickJs);
