//! The manifest written after a backup's object: what makes the key a complete backup, and
//! what a restore checks the bytes it reads against.

use super::client::Store;
use crate::io::compress::Format;
use crate::steps::cx::StepError;
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt as _;
use serde::{Deserialize, Serialize};

/// The manifest's key for an object's key.
pub fn key_for(key: &str) -> String {
    format!("{key}{SUFFIX}")
}

/// What manifest keys end with.
pub const SUFFIX: &str = ".manifest.json";

/// Size and SHA-256 of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub bytes: u64,
    pub sha256: String,
}

impl From<crate::io::digest::StreamDigest> for Digest {
    fn from(d: crate::io::digest::StreamDigest) -> Self {
        Self {
            bytes: d.bytes,
            sha256: d.sha256,
        }
    }
}

/// A backup's manifest (`KEY.manifest.json`), written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `1`.
    pub format_version: u32,
    /// The object's key (below the store's prefix).
    pub key: String,
    /// The bytes in the store (compressed and encrypted).
    pub stored: Digest,
    /// The bytes before compression and encryption.
    pub plaintext: Digest,
    pub compression: Option<Format>,
    /// The recipients (public keys) the object is encrypted to; empty: not encrypted.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// What was uploaded: a file, a directory (tar), a process's output.
    pub source: String,
    pub started: DateTime<Utc>,
    pub completed: DateTime<Utc>,
    pub runbook: String,
    pub run_id: String,
    pub step: String,
}

/// Reads the manifest of `key`: `None` when there is none (an incomplete backup).
pub async fn read(store: &Store, key: &str) -> Result<Option<Manifest>, StepError> {
    let path = store.path(&key_for(key));
    match store.inner.get(&path).await {
        Ok(r) => {
            let bytes = r
                .bytes()
                .await
                .map_err(|e| store.error(&format!("reading the manifest of `{key}`"), &e))?;
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StepError::failed(format!(
                    "{}: the manifest of `{key}` is not valid: {e}",
                    store.describe()
                ))
            })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store.error(&format!("reading the manifest of `{key}`"), &e)),
    }
}

/// Writes the manifest (after the object is complete).
pub async fn write(store: &Store, manifest: &Manifest) -> Result<(), StepError> {
    let body = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    store
        .inner
        .put(&store.path(&key_for(&manifest.key)), body.into())
        .await
        .map(|_| ())
        .map_err(|e| store.error(&format!("writing the manifest of `{}`", manifest.key), &e))
}
