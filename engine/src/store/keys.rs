//! Random keys the engine makes on first use and keeps in the store.

use chacha20poly1305::aead::rand_core::RngCore as _;

use super::Store;
use super::kv::KvBatch;
use super::trees::Tree;

impl Store {
    /// The key the compile cache seals its entries with: made on first use, then kept.
    pub fn compile_cache_key(&self) -> anyhow::Result<[u8; 32]> {
        self.key("compile-cache-key")
    }

    fn key(&self, name: &str) -> anyhow::Result<[u8; 32]> {
        let meta = self.kv(Tree::Meta)?;
        loop {
            let stored = meta.get(name.as_bytes())?;
            if let Some(stored) = &stored
                && let Ok(key) = <[u8; 32]>::try_from(stored.as_slice())
            {
                return Ok(key);
            }
            let mut key = [0u8; 32];
            chacha20poly1305::aead::OsRng.fill_bytes(&mut key);
            // Made once: a process that lost the race to make it uses the winner's.
            let mut batch = KvBatch::default();
            batch.expect(name, stored);
            batch.insert(name, &key[..]);
            if meta.apply(batch)? {
                meta.flush()?;
                return Ok(key);
            }
        }
    }
}
