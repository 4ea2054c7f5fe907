//! Plugins from URLs: fetched once into the download directory, pinned by their SHA-256.

use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use weft_model::limits::Bytes;

use super::PluginHost;

impl PluginHost {
    /// The component at `url`, which must have digest `sha256`: from the download directory
    /// when it was fetched before, else fetched (at most 64 MiB), checked and kept there.
    pub(super) fn fetch(&self, url: &str, sha256: &str) -> anyhow::Result<Vec<u8>> {
        if sha256.len() != 64 {
            anyhow::bail!("a plugin fetched from a URL must be pinned with `sha256`");
        }
        let kept = self
            .download_dir
            .as_ref()
            .map(|dir| dir.join(format!("{sha256}.wasm")));
        if let Some(path) = &kept
            && let Ok(bytes) = std::fs::read(path)
            && hex::encode(Sha256::digest(&bytes)) == sha256
        {
            return Ok(bytes);
        }
        // The runner calls `load` from async code; the download gets a thread and a small
        // runtime of its own rather than blocking a worker of the caller's.
        let owned = url.to_string();
        let bytes = thread::spawn(move || -> anyhow::Result<Vec<u8>> {
            const MAX: u64 = 64 << 20;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()?;
                let mut response = client.get(&owned).send().await?.error_for_status()?;
                let mut bytes = Vec::new();
                while let Some(chunk) = response.chunk().await? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > MAX {
                        anyhow::bail!("the download is larger than {}", Bytes(MAX));
                    }
                }
                Ok(bytes)
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the download thread panicked"))??;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != sha256 {
            anyhow::bail!(
                "the download has sha256 {got}, but the policy pins sha256 = \"{sha256}\"; it was not loaded"
            );
        }
        if let Some(path) = &kept
            && let Some(dir) = path.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let tmp = path.with_extension("wasm.tmp");
            if std::fs::write(&tmp, &bytes).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
        Ok(bytes)
    }
}
