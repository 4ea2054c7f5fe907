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

use super::SledStore;
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
    tree: sled::Tree,
}

impl SledStore {
    /// The store's webhook tokens.
    pub fn webhook_tokens(&self) -> anyhow::Result<WebhookTokens> {
        Ok(WebhookTokens {
            tree: self.tree(Tree::Webhooks)?,
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
        let Some(bytes) = self.tree.get(flow_key(instance, flow))? else {
            return Ok(None);
        };
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .with_context(|| {
                format!("the stored webhook token of `{instance}`/`{flow}` is damaged")
            })
    }

    /// The token of `instance`'s flow `flow`, made now if it has none yet.
    pub fn ensure(&self, instance: &str, flow: &str) -> anyhow::Result<String> {
        match self.token(instance, flow)? {
            Some(token) => Ok(token),
            None => self.replace(instance, flow),
        }
    }

    /// A new token for `instance`'s flow `flow`; the old one stops working at once.
    pub fn rotate(&self, instance: &str, flow: &str) -> anyhow::Result<String> {
        self.replace(instance, flow)
    }

    fn replace(&self, instance: &str, flow: &str) -> anyhow::Result<String> {
        let token = new_token();
        let target = serde_json::to_vec(&HookTarget {
            instance: instance.to_string(),
            flow: flow.to_string(),
        })?;
        let key = flow_key(instance, flow);
        self.tree
            .transaction(|tx| {
                if let Some(old) = tx.insert(key.as_slice(), token.as_bytes())? {
                    tx.remove(hook_key(&String::from_utf8_lossy(&old)))?;
                }
                tx.insert(hook_key(&token), target.as_slice())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| anyhow::anyhow!("failed to store the webhook token: {e:?}"))?;
        self.tree
            .flush()
            .context("failed to flush the webhook token")?;
        Ok(token)
    }

    /// Keeps the tokens of the instance flows `keep` says yes to, and drops the others;
    /// returns how many were dropped.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) -> anyhow::Result<usize> {
        let mut dropped = 0;
        for entry in self.tree.scan_prefix(b"flow/") {
            let (key, token) = entry?;
            let name = String::from_utf8_lossy(&key["flow/".len()..]).into_owned();
            let (instance, flow) = name.split_once('\0').unwrap_or((&name, ""));
            if !keep(instance, flow) {
                self.tree.remove(&key)?;
                self.tree
                    .remove(hook_key(&String::from_utf8_lossy(&token)))?;
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
        match self.tree.get(hook_key(token))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .context("a stored webhook target is damaged"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_made_once_found_by_token_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let tokens = store.webhook_tokens().unwrap();
        assert_eq!(tokens.token("acme", "sync").unwrap(), None);
        let first = tokens.ensure("acme", "sync").unwrap();
        assert_eq!(first.len(), 43, "32 bytes in base64url");
        assert_eq!(tokens.ensure("acme", "sync").unwrap(), first);
        let other = tokens.ensure("acme", "nightly").unwrap();
        assert_ne!(other, first);
        let target = tokens.find(&first).unwrap().unwrap();
        assert_eq!(
            (target.instance.as_str(), target.flow.as_str()),
            ("acme", "sync")
        );

        let second = tokens.rotate("acme", "sync").unwrap();
        assert_ne!(second, first);
        assert_eq!(tokens.find(&first).unwrap(), None, "the old token is gone");
        assert_eq!(tokens.find(&second).unwrap().unwrap().flow, "sync");
        assert_eq!(tokens.find("guess").unwrap(), None);

        // An instance that goes takes its addresses with it.
        assert_eq!(tokens.retain(|instance, _| instance != "acme").unwrap(), 2);
        assert_eq!(tokens.find(&second).unwrap(), None);
        assert_eq!(tokens.token("acme", "nightly").unwrap(), None);
        assert_ne!(tokens.ensure("acme", "sync").unwrap(), second);
    }
}
