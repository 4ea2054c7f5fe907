//! Pre-initializing Weft's QuickJS step runtime with a step's modules (wizer): the runtime's
//! `quickjs-init.init` evaluates them once, here, and the component written out starts every
//! execution from that memory, so no execution parses or evaluates the step's code again.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Instance, Lift, Linker, ResourceTable, WasmList};
use wasmtime::{Config, Engine, OptLevel, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The runtime's build-time export.
const INIT_INTERFACE: &str = "weft:quickjs/init@0.1.0";

/// How much work evaluating a step's modules may do (about a second of QuickJS) and how much
/// memory it may use.
const BUILD_FUEL: u64 = 2_000_000_000;
const BUILD_MEMORY: usize = 256 << 20;

struct BuildData {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for BuildData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Evaluates `modules` (name and source) from `entry` inside `runtime` and returns the
/// snapshot. The error is the runtime's: the exception thrown while evaluating, with its stack.
pub(super) fn snapshot(
    runtime: &[u8],
    modules: Vec<(String, String)>,
    entry: &str,
) -> Result<Vec<u8>, String> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer
        .instrument_component(runtime)
        .map_err(|e| format!("the QuickJS runtime could not be prepared: {e:#}"))?;
    // The instance runs once, briefly: compiling fast matters more than the code's speed.
    // Fuel bounds the evaluation, so a module that loops at its top level fails the build
    // instead of hanging it.
    let mut config = Config::new();
    config
        .cranelift_opt_level(OptLevel::None)
        .consume_fuel(true);
    let engine = Engine::new(&config).map_err(|e| e.to_string())?;
    let component = Component::new(&engine, &instrumented).map_err(|e| e.to_string())?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| e.to_string())?;
    trap_step_imports(&engine, &component, &mut linker).map_err(|e| e.to_string())?;
    let mut store = Store::new(
        &engine,
        BuildData {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(BUILD_MEMORY).build(),
        },
    );
    store.limiter(|data| &mut data.limits);
    store.set_fuel(BUILD_FUEL).map_err(|e| e.to_string())?;
    let instance = linker
        .instantiate(&mut store, &component)
        .map_err(|e| format!("the QuickJS runtime could not start: {e:#}"))?;
    let init = instance
        .get_export_index(&mut store, None, INIT_INTERFACE)
        .and_then(|interface| instance.get_export_index(&mut store, Some(&interface), "init"))
        .ok_or("the QuickJS runtime has no `init` export")?;
    let init = instance
        .get_typed_func::<(Vec<(String, String)>, String), (Result<(), String>,)>(&mut store, init)
        .map_err(|e| e.to_string())?;
    let (evaluated,) = init
        .call(&mut store, (modules, entry.to_string()))
        .map_err(|e| match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => "evaluating the step's modules did not finish: is there an endless loop at the top level of a module? Only the step function may run long".to_string(),
            _ => format!("evaluating the step's modules trapped: {e:#}"),
        })?;
    evaluated?;

    let mut state = Snapshotting {
        store: &mut store,
        instance,
    };
    // Wizer's snapshot is async only because its reads of the instance may be; ours are
    // calls that finish at once, so the future is ready on its first poll and needs no
    // executor (this may run inside the caller's runtime, which must not be blocked on).
    let snapshot = std::pin::pin!(wizer.snapshot_component(&cx, &mut state));
    match snapshot.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result.map_err(|e| format!("the snapshot failed: {e:#}")),
        Poll::Pending => Err("the snapshot waited on something; it should not".into()),
    }
}

/// Host calls during evaluation (a config var read at module level) have no instance to answer
/// for: every `weft:step` import traps, naming the call, and the trap is the build's error.
/// (WASI is linked for real: the runtime's start-up reads the clock and a random seed.)
fn trap_step_imports(
    engine: &Engine,
    component: &Component,
    linker: &mut Linker<BuildData>,
) -> wasmtime::Result<()> {
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(interface) = item.ty else {
            continue;
        };
        if !name.starts_with("weft:step/") {
            continue;
        }
        let mut instance = linker.instance(name)?;
        for (function, _) in interface.exports(engine) {
            let call = format!("{name}#{function}");
            instance.func_new(function, move |_, _, _, _| {
                wasmtime::bail!("`{call}` was called while the step's modules were evaluated at build time; call it inside the step function")
            })?;
        }
    }
    Ok(())
}

/// Wizer's view of the instance being snapshotted: it reads memories and globals through
/// exports it added to the runtime.
struct Snapshotting<'a> {
    store: &'a mut Store<BuildData>,
    instance: Instance,
}

impl Snapshotting<'_> {
    fn call<R: Lift + Send + Sync + 'static>(&mut self, interface: &str, func: &str) -> R {
        let interface_index = self
            .instance
            .get_export_index(&mut *self.store, None, interface)
            .expect("wizer instruments the component with this export");
        let func_index = self
            .instance
            .get_export_index(&mut *self.store, Some(&interface_index), func)
            .expect("wizer instruments the component with this export");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func_index)
            .expect("wizer's export has this type");
        func.call(&mut *self.store, ())
            .expect("wizer's export does not trap")
            .0
    }
}

impl ComponentInstanceState for Snapshotting<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func);
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).to_bits()
    }
}
