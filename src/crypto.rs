//! The one crypto library, aws-lc-rs, as the process-wide rustls provider: every TLS client and
//! server (upstream, local listener, simulator, load generator) is built from this provider.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The one crypto provider: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// SHA-256 over the names and bytes of `files`, in order: what a reload compares to know that
/// nothing changed. `None` when a file cannot be read (the reload then reports why).
pub fn files_digest(files: &[std::path::PathBuf]) -> Option<Vec<u8>> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for f in files {
        let bytes = zeroize::Zeroizing::new(std::fs::read(f).ok()?);
        ctx.update(f.as_os_str().as_encoded_bytes());
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(&bytes);
    }
    Some(ctx.finish().as_ref().to_vec())
}

/// The digest of a set of files as they were when their material was last loaded: a reload
/// loads again only when it changed.
#[derive(Debug)]
pub struct FilesSeen {
    files: Vec<std::path::PathBuf>,
    last: std::sync::Mutex<Option<Vec<u8>>>,
}

impl FilesSeen {
    /// Remembers the files as they are now.
    pub fn new(files: Vec<std::path::PathBuf>) -> FilesSeen {
        let last = files_digest(&files);
        FilesSeen {
            files,
            last: std::sync::Mutex::new(last),
        }
    }

    pub fn files(&self) -> &[std::path::PathBuf] {
        &self.files
    }

    /// Runs `load` when the files changed (or one cannot be read: `load` then says why) and
    /// remembers them when it succeeded; `Ok(false)` when they did not change.
    pub fn reload_if_changed<E>(&self, load: impl FnOnce() -> Result<(), E>) -> Result<bool, E> {
        let now = files_digest(&self.files);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_some() && *last == now {
            return Ok(false);
        }
        load()?;
        *last = now;
        Ok(true)
    }
}
