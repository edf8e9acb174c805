//! `object.put`, `object.get`, `object.list`, `object.delete`: backups in an object store
//! (`stores:`), each with a manifest written last.

use super::exec::Compression;
use super::{ConfigProblem, Step, StepType, Touches, plain};
use crate::io::encrypt::{Identity, Recipients, recipient_problem};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use crate::steps::store::manifest::{self, Manifest};
use crate::steps::store::upload::{self, Transform, Written};
use crate::steps::store::{Address, Store};
use object_store::ObjectStoreExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Upload a file, or a directory as a tar stream, to `STORE:KEY`: compressed, encrypted and
/// hashed on the way, in parts, then its manifest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutConfig {
    /// The file or directory to upload.
    pub source: String,
    /// Where: `STORE:KEY` (a key of `stores`, then the key below the store's prefix).
    pub dest: String,
    /// Compress while uploading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<Compression>,
    /// Compression level (gzip 1–9, zstd 1–19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    /// Encrypt with age to these recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<Encrypt>,
}

/// age encryption: who can decrypt.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    /// Public keys: `age1…` (age-keygen), `ssh-ed25519 …`, `ssh-rsa …`.
    pub recipients: Vec<String>,
}

/// age decryption.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decrypt {
    /// The secret (a key of `secrets`) holding the identity: an age identity file or an
    /// unencrypted OpenSSH private key. Never shown.
    pub identity: String,
}

/// Download `STORE:KEY` to a file, checked against its manifest before it is published.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConfig {
    /// `STORE:KEY`, or `STORE:PREFIX/` (ending with `/`): every complete object below it.
    pub source: String,
    /// The file to write (published only once every byte is verified); for a prefix, the
    /// directory the objects go to, each under its last name segment.
    pub dest: String,
    /// Decrypt with an identity from a secret (required when the object is encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypt: Option<Decrypt>,
    /// Decompress as the manifest says it was compressed (default `true`).
    #[serde(default = "yes")]
    pub decompress: bool,
}

fn yes() -> bool {
    true
}

/// List the backups below `STORE:PREFIX`, newest first.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// `STORE:PREFIX` (`offsite:db/`).
    pub prefix: String,
}

/// Delete a backup: its object and its manifest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteConfig {
    /// `STORE:KEY`.
    pub target: String,
}

/// The store an address names (none when it does not parse: `problems` says why).
fn store_name(text: &str) -> Vec<String> {
    Address::parse(text)
        .map(|a| vec![a.store])
        .unwrap_or_default()
}

fn address_problem(key: &str, text: &str) -> Vec<ConfigProblem> {
    Address::parse(text)
        .err()
        .map(|m| ConfigProblem::new(key, m))
        .into_iter()
        .collect()
}

impl Step for PutConfig {
    const TYPE: StepType = plain(&[
        "key",
        "manifest",
        "bytes",
        "sha256",
        "plaintext_bytes",
        "plaintext_sha256",
        "skipped",
    ]);

    fn touches(&self) -> Touches {
        Touches {
            stores: store_name(&self.dest),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_put(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = address_problem("dest", &self.dest);
        if let Some(e) = &self.encrypt {
            if e.recipients.is_empty() {
                out.push(ConfigProblem::new("encrypt.recipients", "no recipient"));
            }
            out.extend(
                e.recipients
                    .iter()
                    .filter(|r| !r.contains("{{"))
                    .filter_map(|r| recipient_problem(r))
                    .map(|m| ConfigProblem::new("encrypt.recipients", m)),
            );
        }
        out
    }
}

impl Step for GetConfig {
    const TYPE: StepType = plain(&["file", "bytes", "sha256", "key", "dir", "files", "keys"]);

    fn touches(&self) -> Touches {
        Touches {
            stores: store_name(&self.source),
            writes: vec![self.dest.clone()],
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_get(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        address_problem("source", &self.source)
    }
}

impl Step for ListConfig {
    const TYPE: StepType = plain(&["latest", "objects", "keys", "incomplete"]);

    fn touches(&self) -> Touches {
        Touches {
            stores: store_name(&self.prefix),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_list(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        address_problem("prefix", &self.prefix)
    }
}

impl Step for DeleteConfig {
    const TYPE: StepType = plain(&["key", "deleted"]);

    fn touches(&self) -> Touches {
        Touches {
            stores: store_name(&self.target),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_delete(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        address_problem("target", &self.target)
    }
}

/// The store addresses a step names, with the key naming each (for `rb validate`).
pub fn addresses(kind: &super::StepKind) -> Vec<(&'static str, &str)> {
    match kind {
        super::StepKind::ObjectPut(c) => vec![("dest", c.dest.as_str())],
        super::StepKind::ObjectGet(c) => vec![("source", c.source.as_str())],
        super::StepKind::ObjectList(c) => vec![("prefix", c.prefix.as_str())],
        super::StepKind::ObjectDelete(c) => vec![("target", c.target.as_str())],
        super::StepKind::Prune(c) => c.store.iter().map(|s| ("store", s.as_str())).collect(),
        super::StepKind::Exec(c) => stream_addresses(c.stdin.as_ref(), &c.stdout),
        super::StepKind::ContainerExec(c) => stream_addresses(c.stdin.as_ref(), &c.stdout),
        _ => Vec::new(),
    }
}

fn stream_addresses<'a>(
    stdin: Option<&'a super::exec::Stdin>,
    stdout: &'a super::exec::Output,
) -> Vec<(&'static str, &'a str)> {
    let mut out = Vec::new();
    if let Some(o) = stdin.and_then(|s| s.object.as_deref()) {
        out.push(("stdin", o));
    }
    if let super::exec::Output::Object(o) = stdout {
        out.push(("stdout", o.object.as_str()));
    }
    out
}

/// The secrets a step names (`decrypt.identity`), with the key naming each.
pub fn secrets(kind: &super::StepKind) -> Vec<(&'static str, &str)> {
    match kind {
        super::StepKind::ObjectGet(c) => c
            .decrypt
            .iter()
            .map(|d| ("decrypt", d.identity.as_str()))
            .collect(),
        super::StepKind::Exec(super::exec::ExecConfig { stdin, .. })
        | super::StepKind::ContainerExec(super::exec::ContainerExecConfig { stdin, .. }) => stdin
            .iter()
            .filter_map(|s| s.decrypt.as_ref())
            .map(|d| ("stdin", d.identity.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The store and key an address names.
pub fn resolve(cx: &StepCx, text: &str) -> Result<(Arc<Store>, String), StepError> {
    let a = Address::parse(text).map_err(StepError::Failed)?;
    Ok((cx.stores.get(&a.store)?, a.key))
}

/// The outputs of a stored backup.
pub fn manifest_outputs(m: &Manifest) -> Outputs {
    let mut out = Outputs::new();
    out.insert("key".into(), m.key.clone().into());
    out.insert("manifest".into(), manifest::key_for(&m.key).into());
    out.insert("bytes".into(), m.stored.bytes.into());
    out.insert("sha256".into(), m.stored.sha256.clone().into());
    out.insert("plaintext_bytes".into(), m.plaintext.bytes.into());
    out.insert("plaintext_sha256".into(), m.plaintext.sha256.clone().into());
    out
}

/// `object.put`.
pub async fn run_put(cfg: &PutConfig, cx: &StepCx) -> StepResult {
    let (store, key) = resolve(cx, &cfg.dest)?;
    let source = cx.path(&cfg.source);
    let is_dir = std::fs::metadata(&source)
        .map_err(|e| StepError::failed(format!("cannot read `{}`: {e}", source.display())))?
        .is_dir();
    let recipients = match &cfg.encrypt {
        Some(e) => Some(Arc::new(
            Recipients::parse(&e.recipients).map_err(StepError::Failed)?,
        )),
        None => None,
    };
    let written = Written {
        key: key.clone(),
        source: if is_dir {
            format!("directory `{}` (tar)", source.display())
        } else {
            format!("file `{}`", source.display())
        },
        step: cx.step_id.clone(),
        run_id: cx.run_id.clone(),
        started: chrono::Utc::now(),
        recipients: recipients
            .as_ref()
            .map(|r| r.text.clone())
            .unwrap_or_default(),
        compression: cfg.compress,
    };
    if !is_dir && let Some(m) = already_there(&store, &key, &source, &written).await? {
        let mut out = manifest_outputs(&m);
        out.insert("skipped".into(), true.into());
        return Ok(out);
    }
    let transform = Transform {
        compress: cfg.compress,
        level: cfg.level,
        recipients,
    };
    let uploading = upload::start(
        &store,
        &key,
        &transform,
        Some(cx.progress.clone()),
        cx.cancel.clone(),
    )?;
    let (mut pipeline, finishing) = uploading.split();
    let src = source.clone();
    let written_blocking = tokio::task::spawn_blocking(move || {
        let r = if is_dir {
            write_tar(&src, &mut pipeline)
        } else {
            std::fs::File::open(&src).and_then(|mut f| std::io::copy(&mut f, &mut pipeline))
        };
        match r {
            Ok(_) => pipeline.finish(),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| StepError::failed(e.to_string()))?;
    // The upload's own error (a store that went away) explains the writer's broken pipe.
    finishing.wait().await?;
    let (plain, stored) = written_blocking
        .map_err(|e| StepError::failed(format!("reading `{}`: {e}", source.display())))?;
    let m = upload::seal(&store, &cx.stores.runbook, written, plain, stored).await?;
    let mut out = manifest_outputs(&m);
    out.insert("skipped".into(), false.into());
    Ok(out)
}

fn write_tar(dir: &Path, w: &mut dyn Write) -> std::io::Result<u64> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir)?;
    b.into_inner()?;
    Ok(0)
}

/// The manifest of `key` when it already holds this file as asked (same plaintext,
/// compression and recipients): the upload is skipped.
async fn already_there(
    store: &Store,
    key: &str,
    source: &Path,
    w: &Written,
) -> Result<Option<Manifest>, StepError> {
    let Some(m) = manifest::read(store, key).await? else {
        return Ok(None);
    };
    if m.compression != w.compression || m.recipients != w.recipients {
        return Ok(None);
    }
    let path = source.to_path_buf();
    let local = tokio::task::spawn_blocking(move || crate::io::digest::sha256_file(&path))
        .await
        .map_err(|e| StepError::failed(e.to_string()))??;
    let head = store.inner.head(&store.path(key)).await;
    let same = local.bytes == m.plaintext.bytes
        && local.sha256 == m.plaintext.sha256
        && head.is_ok_and(|h| h.size == m.stored.bytes);
    Ok(same.then_some(m))
}

/// The manifest of `key`, which a restore needs.
pub async fn require_manifest(store: &Store, key: &str) -> Result<Manifest, StepError> {
    manifest::read(store, key).await?.ok_or_else(|| {
        StepError::failed(format!(
            "{}: `{key}` has no manifest (`{}`): it is an incomplete backup and is not restored",
            store.describe(),
            manifest::key_for(key)
        ))
    })
}

/// The identity of a `decrypt:`, read from its secret.
pub fn identity(cx: &StepCx, d: Option<&Decrypt>) -> Result<Option<Identity>, StepError> {
    d.map(|d| {
        let value = cx.stores.secret(&d.identity)?;
        Identity::parse(&d.identity, value).map_err(StepError::Failed)
    })
    .transpose()
}

/// `object.get`: one object, or (a `source` ending with `/`) every complete object below it.
pub async fn run_get(cfg: &GetConfig, cx: &StepCx) -> StepResult {
    let (store, key) = resolve(cx, &cfg.source)?;
    if key.is_empty() || key.ends_with('/') {
        return run_get_all(cfg, cx, &store, &key).await;
    }
    let m = require_manifest(&store, &key).await?;
    let identity = identity(cx, cfg.decrypt.as_ref())?.map(Arc::new);
    let (path, digest) = fetch_to(
        &store,
        &key,
        m,
        identity,
        cfg.decompress,
        cx.path(&cfg.dest),
        cx,
    )
    .await?;
    let mut out = Outputs::new();
    out.insert("file".into(), path.display().to_string().into());
    out.insert("bytes".into(), digest.bytes.into());
    out.insert("sha256".into(), digest.sha256.into());
    out.insert("key".into(), key.into());
    Ok(out)
}

/// Every complete object below `prefix`, oldest first, into the directory `dest` under its
/// last name segment (without the compression extension when it is decompressed); each file
/// is published only once verified. Objects without a manifest are left out.
async fn run_get_all(cfg: &GetConfig, cx: &StepCx, store: &Arc<Store>, prefix: &str) -> StepResult {
    let mut listed = list(store, prefix).await?;
    listed.reverse();
    let identity = identity(cx, cfg.decrypt.as_ref())?.map(Arc::new);
    let dir = cx.path(&cfg.dest);
    let (mut files, mut keys, mut bytes) = (Vec::new(), Vec::new(), 0u64);
    for (key, _, m) in listed {
        let Some(m) = m else { continue };
        let mut name = key.rsplit('/').next().unwrap_or(&key).to_owned();
        if let Some(c) = m.compression.filter(|_| cfg.decompress)
            && let Some(n) = name.strip_suffix(&format!(".{}", c.extension()))
        {
            name = n.to_owned();
        }
        let (path, digest) = fetch_to(
            store,
            &key,
            m,
            identity.clone(),
            cfg.decompress,
            dir.join(&name),
            cx,
        )
        .await?;
        bytes += digest.bytes;
        files.push(Value::from(path.display().to_string()));
        keys.push(Value::from(key));
    }
    let mut out = Outputs::new();
    out.insert("dir".into(), dir.display().to_string().into());
    out.insert("files".into(), Value::Array(files));
    out.insert("keys".into(), Value::Array(keys));
    out.insert("bytes".into(), bytes.into());
    Ok(out)
}

/// Downloads `key` to `dest`, published only after its size and SHA-256 matched the manifest
/// (decrypted with `identity`, decompressed as the manifest says when `decompress`).
async fn fetch_to(
    store: &Arc<Store>,
    key: &str,
    m: Manifest,
    identity: Option<Arc<Identity>>,
    decompress: bool,
    dest: PathBuf,
    cx: &StepCx,
) -> Result<(PathBuf, manifest::Digest), StepError> {
    let decompress = if decompress { m.compression } else { None };
    let fetching = crate::steps::store::fetch::start(store, key, m);
    let cancel = cx.cancel.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let opened = fetching.open(identity.as_deref(), decompress)?;
        let options = crate::io::atomic::AtomicOptions {
            create_dirs: true,
            ..Default::default()
        };
        let mut file = crate::io::atomic::AtomicFile::with_options(&dest, &options)
            .map_err(|e| e.to_string())?;
        let mut opened = opened;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            let n = opened.reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(|e| format!("cannot write `{}`: {e}", dest.display()))?;
        }
        let digest = opened.verify()?;
        let path = file.commit().map_err(|e| e.to_string())?;
        Ok((path, digest))
    });
    task.await
        .map_err(|e| StepError::failed(e.to_string()))?
        .map_err(|e| {
            if cx.cancel.is_cancelled() {
                StepError::Cancelled
            } else {
                StepError::Failed(e)
            }
        })
}

/// One listed backup.
fn entry(
    key: &str,
    size: u64,
    modified: chrono::DateTime<chrono::Utc>,
    m: Option<&Manifest>,
) -> Value {
    json!({
        "key": key,
        "size": size,
        "modified": modified.to_rfc3339(),
        "complete": m.is_some(),
        "plaintext_bytes": m.map(|m| m.plaintext.bytes),
        "sha256": m.map(|m| m.stored.sha256.clone()),
        "encrypted": m.is_some_and(|m| !m.recipients.is_empty()),
        "compression": m.and_then(|m| m.compression).map(crate::io::compress::Format::extension),
        "run_id": m.map(|m| m.run_id.clone()),
        "runbook": m.map(|m| m.runbook.clone()),
    })
}

/// Every object below `prefix` with its manifest (when it has one), newest first.
pub async fn list(
    store: &Store,
    prefix: &str,
) -> Result<Vec<(String, object_store::ObjectMeta, Option<Manifest>)>, StepError> {
    use futures_util::TryStreamExt;
    let base = store.path(prefix);
    let what = format!("listing `{prefix}`");
    let metas: Vec<object_store::ObjectMeta> = store
        .inner
        .list(Some(&base))
        .try_collect()
        .await
        .map_err(|e| store.error(&what, &e))?;
    let keys: std::collections::BTreeSet<String> =
        metas.iter().map(|m| store.key_of(&m.location)).collect();
    let mut out = Vec::new();
    for meta in metas {
        let key = store.key_of(&meta.location);
        if key.ends_with(manifest::SUFFIX) || !key.starts_with(prefix.trim_start_matches('/')) {
            continue;
        }
        let m = if keys.contains(&manifest::key_for(&key)) {
            manifest::read(store, &key).await?
        } else {
            None
        };
        out.push((key, meta, m));
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.1.last_modified));
    Ok(out)
}

/// `object.list`.
pub async fn run_list(cfg: &ListConfig, cx: &StepCx) -> StepResult {
    let (store, prefix) = resolve(cx, &cfg.prefix)?;
    let listed = list(&store, &prefix).await?;
    let objects: Vec<Value> = listed
        .iter()
        .map(|(k, meta, m)| entry(k, meta.size, meta.last_modified, m.as_ref()))
        .collect();
    let complete: Vec<Value> = listed
        .iter()
        .filter(|(_, _, m)| m.is_some())
        .map(|(k, _, _)| Value::from(k.as_str()))
        .collect();
    let incomplete: Vec<Value> = listed
        .iter()
        .filter(|(_, _, m)| m.is_none())
        .map(|(k, _, _)| Value::from(k.as_str()))
        .collect();
    let mut out = Outputs::new();
    out.insert(
        "latest".into(),
        complete.first().cloned().unwrap_or(Value::Null),
    );
    out.insert("objects".into(), Value::Array(objects));
    out.insert("keys".into(), Value::Array(complete));
    out.insert("incomplete".into(), Value::Array(incomplete));
    Ok(out)
}

/// Deletes a backup: the manifest first (so a half-deleted backup is incomplete, never a
/// manifest without its object), then the object.
pub async fn delete(store: &Store, key: &str) -> Result<(), StepError> {
    for k in [manifest::key_for(key), key.to_owned()] {
        match store.inner.delete(&store.path(&k)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store.error(&format!("deleting `{k}`"), &e)),
        }
    }
    Ok(())
}

/// `object.delete`.
pub async fn run_delete(cfg: &DeleteConfig, cx: &StepCx) -> StepResult {
    let (store, key) = resolve(cx, &cfg.target)?;
    let existed = store.inner.head(&store.path(&key)).await.is_ok();
    delete(&store, &key).await?;
    let mut out = Outputs::new();
    out.insert("key".into(), key.into());
    out.insert("deleted".into(), existed.into());
    Ok(out)
}
