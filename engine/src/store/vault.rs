//! Credentials stored encrypted in the store (`weft credentials set`).
//!
//! Each credential is sealed with ChaCha20-Poly1305 under the master key
//! ([`crate::secrets::MasterKey`]); the associated data binds the workspace, the scope and name
//! of the credential and the key version, so a sealed record copied under another name or
//! workspace does not open. A check record sealed on first use tells a wrong key apart from a
//! damaged record before anything is written.

use anyhow::{Context, bail};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use serde::{Deserialize, Serialize};
use weft_model::credential::{CredentialSpec, Scope};

use super::Store;
use super::kv::{KvBatch, KvTree};
use super::trees::Tree;
use crate::secrets::{MasterKey, StoredCredentials};

/// The key version new records are sealed with.
const KEY_VERSION: u32 = 1;
const CHECK_PLAINTEXT: &[u8] = b"weft master key check";

#[derive(Serialize, Deserialize)]
struct Sealed {
    key_version: u32,
    nonce: String,
    ciphertext: String,
}

/// One stored credential's name and scope, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    /// Its scope.
    pub scope: Scope,
    /// Its name.
    pub name: String,
}

/// The encrypted credentials of one workspace.
pub struct Vault {
    tree: KvTree,
    meta: KvTree,
    workspace: String,
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

fn scope_key(scope: &Scope) -> String {
    match scope {
        Scope::Workspace => "workspace".into(),
        Scope::Customer(id) => format!("customer:{id}"),
    }
}

/// The key of the record that checks the master key.
const CHECK_KEY: &[u8] = b"master-key-check";

impl Vault {
    /// Opens the vault of `workspace` in `store`, checking `key` against the store's check
    /// record (and writing that record on first use).
    pub fn open(store: &Store, workspace: &str, key: MasterKey) -> anyhow::Result<Self> {
        let vault = Self {
            tree: store.kv(Tree::Credentials)?,
            meta: store.kv(Tree::Meta)?,
            workspace: workspace.to_string(),
            cipher: key.cipher(),
        };
        loop {
            if let Some(bytes) = vault.meta.get(CHECK_KEY)? {
                let sealed: Sealed = serde_json::from_slice(&bytes)
                    .context("the store's master key check record is damaged")?;
                vault.open_sealed(&sealed, CHECK_KEY).map_err(|_| {
                    anyhow::anyhow!(
                        "the master key is not the one this store's credentials were sealed with; nothing was changed"
                    )
                })?;
                break;
            }
            // First use: the check record is written only if no other process wrote one
            // meanwhile (with its key, which is then checked against ours above).
            let mut first = KvBatch::default();
            first.expect(CHECK_KEY, None);
            first.insert(
                CHECK_KEY,
                serde_json::to_vec(&vault.seal(CHECK_PLAINTEXT, CHECK_KEY)?)?,
            );
            if vault.meta.apply(first)? {
                vault.meta.flush()?;
                break;
            }
        }
        Ok(vault)
    }

    fn record_key(&self, scope: &Scope, name: &str) -> String {
        format!("{}\0{}\0{name}", self.workspace, scope_key(scope))
    }

    fn aad(&self, scope: &Scope, name: &str, version: u32) -> Vec<u8> {
        format!("{}|{}/{name}|v{version}", self.workspace, scope_key(scope)).into_bytes()
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Sealed> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("failed to encrypt"))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Sealed {
            key_version: KEY_VERSION,
            nonce: b64.encode(nonce),
            ciphertext: b64.encode(ciphertext),
        })
    }

    fn open_sealed(&self, sealed: &Sealed, aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.decode(&sealed.nonce)?;
        if nonce.len() != 12 {
            bail!("bad nonce");
        }
        let ciphertext = b64.decode(&sealed.ciphertext)?;
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("decryption failed"))
    }

    /// Stores `spec` (with its secret values) sealed, replacing any credential of that name
    /// and scope, and flushes it to disk.
    pub fn put(&self, scope: &Scope, name: &str, spec: &CredentialSpec) -> anyhow::Result<()> {
        let plaintext = serde_json::to_vec(spec)?;
        let sealed = self.seal(&plaintext, &self.aad(scope, name, KEY_VERSION))?;
        self.tree.insert(
            self.record_key(scope, name).as_bytes(),
            &serde_json::to_vec(&sealed)?,
        )?;
        self.tree
            .flush()
            .context("failed to flush the credential to disk")?;
        Ok(())
    }

    /// The credential `name` in `scope`, decrypted.
    pub fn get(&self, scope: &Scope, name: &str) -> anyhow::Result<Option<CredentialSpec>> {
        let Some(bytes) = self.tree.get(self.record_key(scope, name).as_bytes())? else {
            return Ok(None);
        };
        let sealed: Sealed = serde_json::from_slice(&bytes)
            .with_context(|| format!("the stored credential `{name}` ({scope}) is damaged"))?;
        let plaintext = self
            .open_sealed(&sealed, &self.aad(scope, name, sealed.key_version))
            .with_context(|| format!("the stored credential `{name}` ({scope}) does not decrypt: it was altered or moved"))?;
        Ok(Some(serde_json::from_slice(&plaintext)?))
    }

    /// Removes the credential; whether it existed.
    pub fn delete(&self, scope: &Scope, name: &str) -> anyhow::Result<bool> {
        let existed = self.tree.remove(self.record_key(scope, name).as_bytes())?;
        self.tree.flush()?;
        Ok(existed)
    }

    /// The names and scopes of the workspace's stored credentials.
    pub fn list(&self) -> anyhow::Result<Vec<StoredName>> {
        let prefix = format!("{}\0", self.workspace);
        let mut out = Vec::new();
        for (key, _) in self.tree.scan_prefix(prefix.as_bytes())? {
            let key = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let Some((scope, name)) = key.split_once('\0') else {
                continue;
            };
            let scope = match scope.strip_prefix("customer:") {
                Some(id) => Scope::Customer(id.to_string()),
                None => Scope::Workspace,
            };
            out.push(StoredName {
                scope,
                name: name.to_string(),
            });
        }
        Ok(out)
    }
}

impl StoredCredentials for Vault {
    fn get(&self, scope: &Scope, name: &str) -> anyhow::Result<Option<CredentialSpec>> {
        Vault::get(self, scope, name)
    }
}
