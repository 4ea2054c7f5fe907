//! `weft:step/state`: small persisted key-value state, scoped to an instance (and its flow).
//!
//! Reads go to the step's own pending writes first, then to the store. Writes are held in the
//! step's state and handed to the runner when the step ends; the runner stores them in the same
//! transaction as the step's record, and only if the step succeeded.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::bindings::weft::step::state::{self, Scope, StateError};
use crate::store::{RunStore, StateScope, StateWrite};
use weft_model::limits::Bytes;

/// The longest key.
pub const MAX_KEY: usize = 256;
/// The largest value.
pub const MAX_VALUE: u64 = 64 << 10;
/// The most one scope may hold, keys and values together.
pub const MAX_SCOPE: u64 = 1 << 20;

/// Where a step's persisted state lives: the store and the flow and instance scopes.
#[derive(Clone)]
pub struct StateLocation {
    /// The store.
    pub store: Arc<dyn RunStore>,
    /// The instance's current flow's scope.
    pub flow: StateScope,
    /// The instance's scope.
    pub instance: StateScope,
}

impl std::fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateLocation")
            .field("flow", &self.flow)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl StateLocation {
    /// The scopes of `instance` of `workspace` running `flow`. Ids are length-prefixed so no
    /// choice of names makes two scopes collide.
    pub fn new(store: Arc<dyn RunStore>, workspace: &str, instance: &str, flow: &str) -> Self {
        let base = format!(
            "{}:{workspace}/{}:{instance}",
            workspace.len(),
            instance.len()
        );
        Self {
            store,
            flow: StateScope(format!("{base}/flow/{}:{flow}", flow.len())),
            instance: StateScope(format!("{base}/instance")),
        }
    }
}

/// The host side of `weft:step/state` for one step execution: reads, and writes kept until the
/// step succeeds.
#[derive(Debug, Default)]
pub struct StateHost {
    context: Option<StateLocation>,
    pending: BTreeMap<(StateScope, String), Option<Vec<u8>>>,
}

impl StateHost {
    /// State for one step execution; `None` when the step runs outside a run.
    pub fn new(context: Option<StateLocation>) -> Self {
        Self {
            context,
            pending: BTreeMap::new(),
        }
    }

    /// The writes the step made, to store with its record when it succeeds.
    pub fn take_writes(&mut self) -> Vec<StateWrite> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((scope, key), value)| StateWrite { scope, key, value })
            .collect()
    }

    fn scope(&self, scope: Scope) -> Option<StateScope> {
        let ctx = self.context.as_ref()?;
        Some(match scope {
            Scope::Flow => ctx.flow.clone(),
            Scope::Instance => ctx.instance.clone(),
        })
    }

    /// The size of `scope` as it would be with the pending writes and `key` set to `len`
    /// bytes.
    fn size_with(&self, scope: &StateScope, key: &str, len: u64) -> anyhow::Result<u64> {
        let ctx = self.context.as_ref().expect("checked by the caller");
        let mut sizes: BTreeMap<String, u64> = ctx.store.state_sizes(scope)?.into_iter().collect();
        for ((s, k), v) in &self.pending {
            if s == scope {
                match v {
                    Some(v) => sizes.insert(k.clone(), v.len() as u64),
                    None => sizes.remove(k),
                };
            }
        }
        sizes.insert(key.to_string(), len);
        Ok(sizes.iter().map(|(k, v)| k.len() as u64 + v).sum())
    }
}

impl state::Host for StateHost {
    fn get(&mut self, scope: Scope, key: String) -> Option<Vec<u8>> {
        let scope = self.scope(scope)?;
        if let Some(value) = self.pending.get(&(scope.clone(), key.clone())) {
            return value.clone();
        }
        let ctx = self.context.as_ref()?;
        // A store that cannot be read looks like a missing value to the step; the store's own
        // failure surfaces when the step's record is written.
        ctx.store.state_get(&scope, &key).ok().flatten()
    }

    fn set(&mut self, scope: Scope, key: String, value: Vec<u8>) -> Result<(), StateError> {
        let Some(scope_id) = self.scope(scope) else {
            return Err(StateError::Unavailable(
                "this step has no persisted state (it is not running as part of a run)".into(),
            ));
        };
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(StateError::TooLarge(format!(
                "state keys are 1 to {MAX_KEY} bytes; `{}…` is {} bytes",
                key.chars().take(32).collect::<String>(),
                key.len()
            )));
        }
        let len = value.len() as u64;
        if len > MAX_VALUE {
            return Err(StateError::TooLarge(format!(
                "the value of state key `{key}` is {}, over the {} limit per value",
                Bytes(len),
                Bytes(MAX_VALUE)
            )));
        }
        let total = self
            .size_with(&scope_id, &key, len)
            .map_err(|e| StateError::Unavailable(format!("the state store failed: {e:#}")))?;
        if total > MAX_SCOPE {
            let which = match scope {
                Scope::Flow => "flow",
                Scope::Instance => "instance",
            };
            return Err(StateError::TooLarge(format!(
                "setting state key `{key}` would grow the {which} state to {}, over its {} limit; delete keys it no longer needs",
                Bytes(total),
                Bytes(MAX_SCOPE)
            )));
        }
        self.pending.insert((scope_id, key), Some(value));
        Ok(())
    }

    fn delete(&mut self, scope: Scope, key: String) {
        if let Some(scope) = self.scope(scope) {
            self.pending.insert((scope, key), None);
        }
    }
}

struct HasState;

impl HasData for HasState {
    type Data<'a> = &'a mut StateHost;
}

/// Adds `weft:step/state` to `linker`, with per-execution state from `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StateHost,
) -> wasmtime::Result<()> {
    state::add_to_linker::<T, HasState>(linker, get)
}
