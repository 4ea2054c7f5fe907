//! The master key that seals stored credentials: from `WEFT_MASTER_KEY` (64 hex digits or
//! base64 of 32 bytes) or from the file named by `WEFT_MASTER_KEY_FILE`, which must live outside
//! the store directory.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;

/// The 32-byte key credentials are sealed with. Its `Debug` shows nothing.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Parses 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| {
                    anyhow::anyhow!("the master key is neither 64 hex digits nor base64")
                })?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            anyhow::anyhow!("the master key must be 32 bytes, not {}", b.len())
        })?;
        Ok(Self(key))
    }

    /// A new random key, as 64 hex digits.
    pub fn generate() -> String {
        let key = ChaCha20Poly1305::generate_key(&mut chacha20poly1305::aead::OsRng);
        hex::encode(key)
    }

    /// The key from `WEFT_MASTER_KEY` or `WEFT_MASTER_KEY_FILE`, refusing a key file inside
    /// `store_dir` (a key kept beside what it protects protects nothing).
    pub fn from_env(store_dir: &Path) -> anyhow::Result<Self> {
        if let Ok(text) = std::env::var("WEFT_MASTER_KEY") {
            return Self::parse(&text).context("`WEFT_MASTER_KEY` is not a valid master key");
        }
        if let Ok(path) = std::env::var("WEFT_MASTER_KEY_FILE") {
            let path = Path::new(&path);
            let (abs_key, abs_store) =
                (std::path::absolute(path)?, std::path::absolute(store_dir)?);
            if abs_key.starts_with(&abs_store) {
                bail!(
                    "the master key file `{}` is inside the store directory `{}`; keep it elsewhere",
                    path.display(),
                    store_dir.display()
                );
            }
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("failed to read the master key file `{}`", path.display())
            })?;
            return Self::parse(&text)
                .with_context(|| format!("`{}` is not a valid master key", path.display()));
        }
        bail!(
            "no master key: set `WEFT_MASTER_KEY` (64 hex digits; `weft credentials new-key` makes one) or `WEFT_MASTER_KEY_FILE` to a file outside the store"
        )
    }
}

impl MasterKey {
    /// The cipher that seals with this key.
    pub fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.0.into())
    }
}
