//! Secrets: secret values, credentials with their secrets loaded and ready for the host to
//! apply, JWT signing, and the master key that seals stored credentials.
//!
//! A credential is defined in the workspace file (`[credentials.NAME]`, or per customer under
//! `[[customers]]`; see [`weft_model::credential`]) with its secret values taken from
//! `env:NAME` or `file:PATH`, or set with `weft credentials set` and kept sealed in the store's
//! vault. A step is bound to a credential by name; the host applies it to the step's requests
//! to the credential's hosts. Plugins never receive a secret.

mod credential;
pub mod jwt;
mod master_key;
pub mod oauth;

use std::sync::Arc;

pub use credential::{Auth, Credential, StoredCredentials, find, load_reference};
pub use master_key::MasterKey;

/// A secret value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself: only for applying it to a request or signing with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
