//! Random keys the engine makes on first use and keeps in the store.

use chacha20poly1305::aead::rand_core::RngCore as _;

use super::SledStore;
use super::trees::Tree;

impl SledStore {
    /// The key the compile cache seals its entries with: made on first use, then kept.
    pub fn compile_cache_key(&self) -> anyhow::Result<[u8; 32]> {
        self.key("compile-cache-key")
    }

    fn key(&self, name: &str) -> anyhow::Result<[u8; 32]> {
        let meta = self.tree(Tree::Meta)?;
        if let Some(stored) = meta.get(name)?
            && let Ok(key) = <[u8; 32]>::try_from(stored.as_ref())
        {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        chacha20poly1305::aead::OsRng.fill_bytes(&mut key);
        meta.insert(name, &key[..])?;
        meta.flush()?;
        Ok(key)
    }
}
