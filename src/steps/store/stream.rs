//! The streaming forms on `exec`/`container.exec`: standard output straight into a store
//! (`stdout: {object: STORE:KEY, compress, encrypt}`) and standard input straight from one
//! (`stdin: {object: STORE:KEY, decrypt}`), with no copy on local disk.

use super::manifest::Manifest;
use super::upload::{self, Transform, Written};
use crate::io::encrypt::Recipients;
use crate::steps::cx::{Outputs, StepCx, StepError};
use crate::steps::exec::{ChecksumAlgo, Compression};
use crate::steps::object::{
    Decrypt, Encrypt, identity, manifest_outputs, require_manifest, resolve,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::io::{AsyncWrite, DuplexStream};
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

/// Bytes buffered between the process and the upload pipeline.
const PIPE: usize = 256 * 1024;

/// A stream uploaded to a store, with its manifest once the step succeeds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputObject {
    /// `STORE:KEY`.
    pub object: String,
    /// Compress while uploading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<Compression>,
    /// Compression level (gzip 1–9, zstd 1–19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    /// Encrypt with age to these recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<Encrypt>,
    /// Always SHA-256 (of the plaintext and of the stored bytes, in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChecksumAlgo>,
}

impl PartialEq for Encrypt {
    fn eq(&self, other: &Self) -> bool {
        self.recipients == other.recipients
    }
}

/// An output being uploaded.
pub struct ObjectWriter(
    crate::io::commit::Committed<DuplexStream, Result<Option<Manifest>, StepError>>,
);

impl ObjectWriter {
    /// Starts the upload; the process writes into [`ObjectWriter::writer`].
    pub fn start(spec: &OutputObject, cx: &StepCx) -> Self {
        let (pipe, read) = tokio::io::duplex(PIPE);
        let (commit, decision) = std::sync::mpsc::channel::<bool>();
        let spec = spec.clone();
        let cx = cx.clone();
        let task = tokio::spawn(async move { upload_stream(&spec, &cx, read, decision).await });
        Self(crate::io::commit::Committed::new(pipe, commit, task))
    }

    pub fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        &mut self.0.pipe
    }

    /// Ends the stream: completes the upload and writes the manifest when `ok`, else aborts
    /// it (nothing under the key). Adds the object's outputs.
    pub async fn finish(self, ok: bool, outputs: &mut Outputs) -> Result<(), StepError> {
        let result = self
            .0
            .end(ok)
            .await
            .map_err(|e| StepError::failed(format!("upload: {e}")))?;
        match result {
            Ok(Some(m)) => {
                outputs.extend(manifest_outputs(&m));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(_) if !ok => Ok(()),
            Err(e) => Err(e),
        }
    }
}

async fn upload_stream(
    spec: &OutputObject,
    cx: &StepCx,
    read: DuplexStream,
    decision: std::sync::mpsc::Receiver<bool>,
) -> Result<Option<Manifest>, StepError> {
    let (store, key) = resolve(cx, &spec.object)?;
    let recipients = match &spec.encrypt {
        Some(e) => Some(Arc::new(
            Recipients::parse(&e.recipients).map_err(StepError::Failed)?,
        )),
        None => None,
    };
    let written = Written {
        key: key.clone(),
        source: format!("standard output of step `{}`", cx.step_id),
        step: cx.step_id.clone(),
        run_id: cx.run_id.clone(),
        started: chrono::Utc::now(),
        recipients: recipients
            .as_ref()
            .map(|r| r.text.clone())
            .unwrap_or_default(),
        compression: spec.compress,
    };
    let transform = Transform {
        compress: spec.compress,
        level: spec.level,
        recipients,
    };
    let (mut pipeline, finishing) = upload::start(
        &store,
        &key,
        &transform,
        Some(cx.progress.clone()),
        cx.cancel.clone(),
    )?
    .split();
    let copied = tokio::task::spawn_blocking(move || {
        let mut input = SyncIoBridge::new(read);
        std::io::copy(&mut input, &mut pipeline)?;
        // Complete only once the process is known to have succeeded.
        if decision.recv().unwrap_or(false) {
            pipeline.finish().map(Some)
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(|e| StepError::failed(e.to_string()))?;
    let waited = finishing.wait().await;
    let Some((plain, stored)) = copied.map_err(|e| {
        waited
            .clone()
            .err()
            .unwrap_or_else(|| StepError::failed(format!("uploading `{key}`: {e}")))
    })?
    else {
        return Ok(None);
    };
    waited?;
    upload::seal(&store, &cx.stores.runbook, written, plain, stored)
        .await
        .map(Some)
}

/// `stdin: {object: STORE:KEY, decrypt, decompress}`.
#[derive(Debug, Clone)]
pub struct InputObject<'a> {
    pub object: &'a str,
    pub decrypt: Option<&'a Decrypt>,
    pub decompress: bool,
}

/// Feeds the object into `writer` (a process's standard input), decrypted and decompressed,
/// and fails when its bytes do not match the manifest.
pub fn feed<W: AsyncWrite + Unpin + Send + 'static>(
    spec: &InputObject<'_>,
    cx: &StepCx,
    writer: W,
) -> JoinHandle<Result<u64, String>> {
    let object = spec.object.to_owned();
    let decrypt = spec.decrypt.cloned();
    let decompress = spec.decompress;
    let cx = cx.clone();
    tokio::spawn(async move {
        let message = |e: StepError| match e {
            StepError::Failed(m) => m,
            other => format!("{other:?}"),
        };
        let (store, key) = resolve(&cx, &object).map_err(message)?;
        let m = require_manifest(&store, &key).await.map_err(message)?;
        let id = identity(&cx, decrypt.as_ref()).map_err(message)?;
        let format = if decompress { m.compression } else { None };
        let fetching = super::fetch::start(&store, &key, m);
        tokio::task::spawn_blocking(move || {
            let mut opened = fetching.open(id.as_ref(), format)?;
            let mut out = SyncIoBridge::new(writer);
            let copied = std::io::copy(&mut opened.reader, &mut out);
            let _ = out.shutdown();
            let digest = opened.verify()?;
            // The process may stop reading early: only the object's own check counts.
            let _ = copied;
            Ok(digest.bytes)
        })
        .await
        .map_err(|e| e.to_string())?
    })
}

/// `stdout: {…}` as a mapping: `{file, compress, level, checksum}` or
/// `{object, compress, level, encrypt, checksum}`.
pub fn decode_output<'de, A: serde::de::MapAccess<'de>>(
    map: A,
) -> Result<crate::steps::exec::Output, A::Error> {
    use crate::steps::exec::{Output, OutputFile};
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Any {
        file: Option<String>,
        object: Option<String>,
        compress: Option<Compression>,
        level: Option<i32>,
        encrypt: Option<Encrypt>,
        checksum: Option<ChecksumAlgo>,
    }
    let a = Any::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
    match (a.file, a.object) {
        (Some(file), None) => Ok(Output::File(OutputFile {
            file,
            compress: a.compress,
            level: a.level,
            checksum: a.checksum,
            encrypt: a.encrypt,
        })),
        (None, Some(object)) => Ok(Output::Object(OutputObject {
            object,
            compress: a.compress,
            level: a.level,
            encrypt: a.encrypt,
            checksum: a.checksum,
        })),
        (Some(_), Some(_)) => Err(serde::de::Error::custom(
            "an output goes to a `file` or an `object`, not both",
        )),
        (None, None) => Err(serde::de::Error::custom(
            "expected `capture`, `{file: PATH}` or `{object: STORE:KEY}`",
        )),
    }
}

/// Opens a local file for `stdin: {file, decrypt, decompress}`: decrypted with `identity`,
/// then decompressed by the extension left after `.age` (`db.dump.zst.age`).
pub fn open_file(
    path: &std::path::Path,
    decompress: bool,
    identity: Option<&crate::io::encrypt::Identity>,
) -> Result<Box<dyn std::io::Read + Send>, String> {
    let Some(id) = identity else {
        return crate::io::compress::open_input(path, decompress).map_err(|e| e.to_string());
    };
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let plain: Box<dyn std::io::Read + Send> = Box::new(
        id.decrypt(std::io::BufReader::new(file), &[])
            .map_err(|e| format!("`{}`: {e}", path.display()))?,
    );
    if !decompress {
        return Ok(plain);
    }
    let inner = path.with_extension("");
    let format = crate::io::compress::Format::for_path(&inner).map_err(|e| e.to_string())?;
    crate::io::compress::Decoder::new(plain, format)
        .map(|d| Box::new(d) as Box<dyn std::io::Read + Send>)
        .map_err(|e| e.to_string())
}
