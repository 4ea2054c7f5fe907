//! The on-disk compile cache: compiled components, so a restart does not compile them again,
//! and the components code steps were built into, so an unchanged step is never built again.
//!
//! An entry is keyed by the component's SHA-256 and the engine's compatibility hash (wasmtime
//! version and compilation settings), and sealed with an HMAC-SHA256 under a random key kept in
//! the store's database. Only an entry whose seal checks is handed to wasmtime to deserialize,
//! so the engine only ever loads machine code it wrote itself: a file dropped into the cache
//! directory, a corrupted one or one from another build is ignored, removed and rebuilt.

use crate::store::Store;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"WEFTC001";
const MAC_LEN: usize = 32;

/// What the cache did since the host started.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Components loaded from the cache.
    pub hits: AtomicU64,
    /// Components compiled (not in the cache, or the cache entry was refused).
    pub compiled: AtomicU64,
    /// Entries refused (bad seal, truncated, incompatible) and rebuilt.
    pub rejected: AtomicU64,
    /// Code steps built from their source.
    pub code_built: AtomicU64,
    /// Code steps whose built component was found in the cache.
    pub code_reused: AtomicU64,
}

/// A compile cache in one directory.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CompileCache {
    /// A cache in `dir` sealed with `key`.
    pub fn new(dir: PathBuf, key: [u8; 32]) -> Self {
        Self { dir, key }
    }

    /// The cache of `store`, in `<store>/cache`, sealed with the store's compile cache key.
    pub fn in_store(store: &Store) -> anyhow::Result<Self> {
        Ok(Self::new(
            store.local_dir().join("cache"),
            store.compile_cache_key()?,
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    fn seal(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(MAGIC);
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    /// The cached compilation of the component whose SHA-256 is `sha256`, if there is one and
    /// its seal checks. A refused entry is removed and counted.
    pub fn load(
        &self,
        engine: &Engine,
        sha256: &str,
        counters: &CacheCounters,
    ) -> Option<Component> {
        let path = self.path(engine, sha256);
        let bytes = std::fs::read(&path).ok()?;
        let refuse = || {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            let _ = std::fs::remove_file(&path);
            None
        };
        let Some(payload) = self.unseal(&bytes) else {
            return refuse();
        };
        // SAFETY: `Component::deserialize` runs the machine code in `payload`, so it must be
        // what a Weft engine serialized. The HMAC above, under a random key kept in this store's
        // database, shows that `store` below wrote these bytes (a file copied in from elsewhere
        // or damaged on disk fails it); wasmtime then checks that the artifact was built by
        // this wasmtime version with these settings. Someone who can read the store's database
        // can forge a seal, but can then also change everything else the engine trusts there.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        match component {
            Ok(component) => {
                counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(component)
            }
            Err(_) => refuse(),
        }
    }

    /// Stores the compilation of the component whose SHA-256 is `sha256`. Best effort: a cache
    /// that cannot be written only means compiling again next time.
    pub fn store(&self, engine: &Engine, sha256: &str, component: &Component) {
        let Ok(payload) = component.serialize() else {
            return;
        };
        self.write_sealed(&self.path(engine, sha256), &payload);
    }

    fn built_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("code-{key}.wasm.sealed"))
    }

    /// The component a code step's source was built into, under `key` (a digest of the source
    /// and everything the build depends on), if it is here and its seal checks.
    pub fn load_built(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.built_path(key);
        let bytes = std::fs::read(&path).ok()?;
        match self.unseal(&bytes) {
            Some(payload) => Some(payload.to_vec()),
            None => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps the component built from a code step's source under `key`. Best effort.
    pub fn store_built(&self, key: &str, component: &[u8]) {
        self.write_sealed(&self.built_path(key), component);
    }

    /// The payload of a sealed entry, if its magic and seal check.
    fn unseal<'b>(&self, bytes: &'b [u8]) -> Option<&'b [u8]> {
        if bytes.len() < MAGIC.len() + MAC_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let (mac, payload) = bytes[MAGIC.len()..].split_at(MAC_LEN);
        let mut check = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        check.update(MAGIC);
        check.update(payload);
        check.verify_slice(mac).is_ok().then_some(payload)
    }

    fn write_sealed(&self, path: &Path, payload: &[u8]) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let mut bytes = Vec::with_capacity(MAGIC.len() + MAC_LEN + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.seal(payload));
        bytes.extend_from_slice(payload);
        // Write under a unique name and rename, so a reader never sees half a file.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self.dir.join(format!(
            ".{name}.{}-{unique}.tmp",
            hex::encode(std::process::id().to_be_bytes())
        ));
        if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
