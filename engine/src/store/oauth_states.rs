//! OAuth authorizations in progress: what a customer's `state` stands for until the provider
//! redirects back with it. Each is taken once (a replayed callback finds nothing) and expires
//! after [`STATE_LIFETIME`]. Kept in the store, not in memory, so that the callback may reach
//! any front end. Keyed by the state's SHA-256, so the store never holds a usable `state`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Store;
use super::kv::{KvBatch, KvTree};
use super::trees::Tree;

/// How long a customer has to finish signing in at the provider.
pub const STATE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// One authorization a customer started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The customer who started it: the tokens are stored for it.
    pub customer: String,
    /// The instance and its connection.
    pub instance: String,
    /// The connection's name.
    pub connection: String,
    /// The PKCE code verifier, sent with the code.
    pub verifier: String,
    /// The redirect URI the authorization request named (the code exchange must repeat it).
    pub redirect_uri: String,
    /// When it was started (RFC 3339).
    pub started: String,
}

/// The authorizations in progress.
#[derive(Debug, Clone)]
pub struct OauthStates {
    tree: KvTree,
}

impl Store {
    /// The OAuth authorizations in progress.
    pub fn oauth_states(&self) -> anyhow::Result<OauthStates> {
        Ok(OauthStates {
            tree: self.kv(Tree::OauthStates)?,
        })
    }
}

fn key(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

impl OauthStates {
    /// Remembers `pending` under `state`, dropping any that expired.
    pub fn save(&self, state: &str, pending: &PendingAuthorization) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        for (key, value) in self.tree.scan_prefix(b"")? {
            let expired = serde_json::from_slice::<PendingAuthorization>(&value)
                .ok()
                .and_then(|p| chrono::DateTime::parse_from_rfc3339(&p.started).ok())
                .is_none_or(|started| now - started.to_utc() > STATE_LIFETIME);
            if expired {
                self.tree.remove(&key)?;
            }
        }
        self.tree
            .insert(&key(state), &serde_json::to_vec(pending)?)?;
        self.tree.flush()
    }

    /// Takes what `state` stands for, once; `None` for an unknown, used or expired state.
    pub fn take(&self, state: &str) -> anyhow::Result<Option<PendingAuthorization>> {
        let key = key(state);
        let Some(value) = self.tree.get(&key)? else {
            return Ok(None);
        };
        let mut batch = KvBatch::default();
        batch.expect(key.clone(), Some(value.clone()));
        batch.remove(key);
        if !self.tree.apply(batch)? {
            // Another callback with the same state took it first.
            return Ok(None);
        }
        let pending: PendingAuthorization = serde_json::from_slice(&value)?;
        let fresh = chrono::DateTime::parse_from_rfc3339(&pending.started)
            .is_ok_and(|started| chrono::Utc::now() - started.to_utc() <= STATE_LIFETIME);
        Ok(fresh.then_some(pending))
    }
}
