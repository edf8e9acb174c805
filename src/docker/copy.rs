//! `container.copy` through the archive API, streamed both ways in bounded memory.

use std::path::{Path, PathBuf};

use bollard::query_parameters::{
    ContainerArchiveInfoOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use super::archive::{self, CopyReport, GO_MODE_DIR};
use super::engine::Engine;
use super::error::{DockerError, Subject};

/// The size of the pipe between the tar builder thread and the upload.
const PIPE: usize = 256 * 1024;

impl Engine {
    /// The tar stream of `path` inside `container`, as the engine sends it (`docker cp`'s
    /// format: a directory's entries start with its own name).
    pub fn copy_out(
        &self,
        container: &str,
        path: &str,
    ) -> impl Stream<Item = Result<Bytes, DockerError>> + Send + 'static {
        let options = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        let (engine, container, path) = (self.clone(), container.to_owned(), path.to_owned());
        self.docker
            .download_from_container(&container, Some(options))
            .map_err(move |e| {
                engine.err(
                    Subject::Path(&container, &path),
                    &format!("to send `{path}`"),
                    e,
                )
            })
    }

    /// Copies `path` from `container` to `dest` on this host, as `docker cp` does: when
    /// `dest` is an existing directory the copy goes inside it under the source's name.
    ///
    /// A file is written under a temporary name, synced, then renamed. A directory is
    /// extracted into a temporary sibling, then renamed; its final path must not exist.
    /// Entries that would land outside the destination (absolute, `..`, links leading
    /// out) are refused.
    pub async fn copy_out_to(
        &self,
        container: &str,
        path: &str,
        dest: &Path,
    ) -> Result<CopyReport, DockerError> {
        let stat = self.stat(container, path).await?;
        let is_dir = stat.file_mode & GO_MODE_DIR != 0;
        let target = if dest.is_dir() {
            let name = Path::new(path.trim_end_matches('/'))
                .file_name()
                .unwrap_or_default();
            dest.join(if name.is_empty() {
                stat.name.as_ref()
            } else {
                name
            })
        } else {
            dest.to_owned()
        };
        let stream = self
            .copy_out(container, path)
            .map_err(std::io::Error::other);
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        let job = tokio::task::spawn_blocking(move || {
            if is_dir {
                archive::extract_dir(reader, &target)
            } else {
                archive::extract_file(reader, &target)
            }
        });
        job.await
            .map_err(|e| DockerError::io("copy to", dest, std::io::Error::other(e)))?
    }

    /// Copies the host file or directory `src` into `container` at `dest`, as `docker cp`
    /// does: when `dest` is an existing directory the copy goes inside it under the
    /// source's name, else `dest` names the copy (its parent must exist). The tar is built
    /// on a blocking thread and streamed through a small pipe.
    pub async fn copy_in(
        &self,
        src: &Path,
        container: &str,
        dest: &str,
    ) -> Result<CopyReport, DockerError> {
        let src_name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| DockerError::io("copy", src, std::io::ErrorKind::InvalidInput.into()))?;
        std::fs::metadata(src).map_err(|e| DockerError::io("read", src, e))?;
        let dest_trim = if dest.len() > 1 {
            dest.trim_end_matches('/')
        } else {
            dest
        };
        let (dir, name) = match self.stat(container, dest_trim).await {
            Ok(stat) if stat.file_mode & GO_MODE_DIR != 0 => (dest_trim.to_owned(), src_name),
            Ok(_) | Err(DockerError::PathNotFound { .. }) => {
                let p = Path::new(dest_trim);
                let parent = p
                    .parent()
                    .map_or("/".into(), |d| d.to_string_lossy().into_owned());
                let name = p
                    .file_name()
                    .map_or(src_name, |n| n.to_string_lossy().into_owned());
                (
                    if parent.is_empty() {
                        "/".into()
                    } else {
                        parent
                    },
                    name,
                )
            }
            Err(e) => return Err(e),
        };
        let final_path = PathBuf::from(&dir).join(&name);

        let (rx, tx) = tokio::io::duplex(PIPE);
        let writer = SyncIoBridge::new(tx);
        let src_owned = src.to_owned();
        let builder =
            tokio::task::spawn_blocking(move || archive::build(&src_owned, &name, writer));
        let options = UploadToContainerOptions {
            path: dir.clone(),
            ..Default::default()
        };
        let body = bollard::body_try_stream(ReaderStream::with_capacity(rx, 64 * 1024));
        let uploaded = self
            .long
            .upload_to_container(container, Some(options), body)
            .await
            .map_err(|e| {
                self.err(
                    Subject::Path(container, &dir),
                    &format!("to receive `{}`", src.display()),
                    e,
                )
            });
        let built = builder
            .await
            .map_err(|e| DockerError::io("copy", src, std::io::Error::other(e)))?;
        uploaded?;
        let report = built?;
        Ok(CopyReport {
            path: final_path,
            ..report
        })
    }

    async fn stat(
        &self,
        container: &str,
        path: &str,
    ) -> Result<bollard::container::PathStatResponse, DockerError> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_owned(),
        };
        let result = self
            .docker
            .get_container_archive_info(container, Some(options))
            .await
            .map_err(|e| {
                self.err(
                    Subject::Path(container, path),
                    &format!("to stat `{path}`"),
                    e,
                )
            });
        // A HEAD answer has no body: a 404 does not say whether the path or the container
        // is missing.
        if let Err(DockerError::PathNotFound { .. }) = &result {
            self.inspect_state(container).await?;
        }
        result
    }
}

/// Collects a [`Engine::copy_out`] stream into memory; for small files and tests.
pub async fn collect(
    stream: impl Stream<Item = Result<Bytes, DockerError>>,
) -> Result<Vec<u8>, DockerError> {
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}
