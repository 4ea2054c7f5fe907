//! The secret address of each webhook: a random token per instance flow, so that nobody finds a
//! customer's webhook by guessing its instance id.
//!
//! A token is 32 random bytes (256 bits) in base64url; its webhook is `/webhooks/{token}`. The
//! store keeps two entries per instance flow in the `webhooks` tree: `flow/INSTANCE\0FLOW` → the
//! token (to show it), and `hook/SHA256(token)` → the instance and flow (to find it). Looking a
//! request's token up by its hash means the lookup's timing depends on the hash, never on how
//! much of a real token a caller guessed right.

use anyhow::Context as _;
use base64::Engine as _;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Store;
use super::kv::{KvBatch, KvTree};
use super::trees::Tree;

/// The random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// The flow a webhook token triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookTarget {
    /// The instance's id.
    pub instance: String,
    /// The flow's name.
    pub flow: String,
}

/// The webhook tokens of every instance flow.
#[derive(Debug, Clone)]
pub struct WebhookTokens {
    tree: KvTree,
}

impl Store {
    /// The store's webhook tokens.
    pub fn webhook_tokens(&self) -> anyhow::Result<WebhookTokens> {
        Ok(WebhookTokens {
            tree: self.kv(Tree::Webhooks)?,
        })
    }

    /// Drops the webhook tokens of instance flows the registry no longer has (an instance
    /// removed by `weft apply`, a flow gone from the version an instance is pinned to), so that
    /// an instance created again under the same id gets new addresses. Returns how many went.
    pub fn prune_webhook_tokens(&self) -> anyhow::Result<usize> {
        let live = self.registry()?.instance_flows()?;
        self.webhook_tokens()?
            .retain(|instance, flow| live.iter().any(|(i, f)| i == instance && f == flow))
    }
}

fn flow_key(instance: &str, flow: &str) -> Vec<u8> {
    format!("flow/{instance}\0{flow}").into_bytes()
}

fn hook_key(token: &str) -> Vec<u8> {
    let mut key = b"hook/".to_vec();
    key.extend_from_slice(&Sha256::digest(token.as_bytes()));
    key
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl WebhookTokens {
    /// The token of `instance`'s flow `flow`, if it has one.
    pub fn token(&self, instance: &str, flow: &str) -> anyhow::Result<Option<String>> {
        let Some(bytes) = self.tree.get(&flow_key(instance, flow))? else {
            return Ok(None);
        };
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .with_context(|| {
                format!("the stored webhook token of `{instance}`/`{flow}` is damaged")
            })
    }

    /// The token of `instance`'s flow `flow`, made now if it has none yet (by this process or
    /// another sharing the store: they all end up with the same token).
    pub fn ensure(&self, instance: &str, flow: &str) -> anyhow::Result<String> {
        loop {
            if let Some(token) = self.token(instance, flow)? {
                return Ok(token);
            }
            if let Some(token) = self.swap(instance, flow, None)? {
                return Ok(token);
            }
        }
    }

    /// A new token for `instance`'s flow `flow`; the old one stops working at once.
    pub fn rotate(&self, instance: &str, flow: &str) -> anyhow::Result<String> {
        loop {
            let old = self.tree.get(&flow_key(instance, flow))?;
            if let Some(token) = self.swap(instance, flow, old)? {
                return Ok(token);
            }
        }
    }

    /// Replaces the token `old` (`None`: no token yet) of `instance`'s flow `flow` with a new
    /// one, in one batch with the old one's lookup entry going; `None` if another process
    /// changed the token meanwhile.
    fn swap(
        &self,
        instance: &str,
        flow: &str,
        old: Option<Vec<u8>>,
    ) -> anyhow::Result<Option<String>> {
        let token = new_token();
        let target = serde_json::to_vec(&HookTarget {
            instance: instance.to_string(),
            flow: flow.to_string(),
        })?;
        let key = flow_key(instance, flow);
        let mut batch = KvBatch::default();
        if let Some(old) = &old {
            batch.remove(hook_key(&String::from_utf8_lossy(old)));
        }
        batch.expect(key.clone(), old);
        batch.insert(key, token.as_bytes());
        batch.insert(hook_key(&token), target);
        if !self
            .tree
            .apply(batch)
            .context("failed to store the webhook token")?
        {
            return Ok(None);
        }
        self.tree
            .flush()
            .context("failed to flush the webhook token")?;
        Ok(Some(token))
    }

    /// Keeps the tokens of the instance flows `keep` says yes to, and drops the others;
    /// returns how many were dropped.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) -> anyhow::Result<usize> {
        let mut dropped = 0;
        for (key, token) in self.tree.scan_prefix(b"flow/")? {
            let name = String::from_utf8_lossy(&key["flow/".len()..]).into_owned();
            let (instance, flow) = name.split_once('\0').unwrap_or((&name, ""));
            if !keep(instance, flow) {
                self.tree.remove(&key)?;
                self.tree
                    .remove(&hook_key(&String::from_utf8_lossy(&token)))?;
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.tree
                .flush()
                .context("failed to flush the webhook tokens")?;
        }
        Ok(dropped)
    }

    /// The instance flow whose token is `token`, if any.
    pub fn find(&self, token: &str) -> anyhow::Result<Option<HookTarget>> {
        match self.tree.get(&hook_key(token))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .context("a stored webhook target is damaged"),
        }
    }
}
