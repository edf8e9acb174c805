//! Pulling an image from its registry, and the digest of the image a container runs.

use std::collections::BTreeMap;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::engine::Engine;
use super::error::{DockerError, Subject};

/// A user and password for an image's registry.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

/// An image on an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its id (`sha256:` of its configuration).
    pub id: String,
    /// Its digest in the registry of the reference asked for (`sha256:…`), when it came
    /// from one (a locally built or loaded image has none).
    pub digest: Option<String>,
}

/// An image reference split as the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    /// `host[:port]` of the registry (`docker.io` when the reference names none).
    pub registry: &'a str,
    /// The repository, with its registry when the reference names one (`127.0.0.1:5501/app`).
    pub repository: &'a str,
    /// The tag (`latest` when neither a tag nor a digest is given).
    pub tag: Option<&'a str>,
    /// The pinned digest (`sha256:…`).
    pub digest: Option<&'a str>,
}

impl<'a> Reference<'a> {
    /// Split `[registry/]path[:tag][@digest]`.
    pub fn parse(image: &'a str) -> Self {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (image, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        let tag = tag.or(if digest.is_none() {
            Some("latest")
        } else {
            None
        });
        let first = repository.split('/').next().unwrap_or_default();
        let registry = if repository.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost")
        {
            first
        } else {
            "docker.io"
        };
        Self {
            registry,
            repository,
            tag,
            digest,
        }
    }
}

impl Engine {
    /// The id of `image` on this engine and its registry digest, `None` when it is not
    /// there.
    pub async fn image_info(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        let inspect = match self.docker.inspect_image(image).await {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => {
                return Err(self.err(
                    Subject::Image(image),
                    &format!("to inspect image `{image}`"),
                    e,
                ));
            }
        };
        let repository = Reference::parse(image).repository;
        let digest = inspect
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find_map(|d| {
                let (repo, digest) = d.split_once('@')?;
                (repo == repository || repo == format!("docker.io/{repository}"))
                    .then(|| digest.to_owned())
            });
        Ok(Some(ImageInfo {
            id: inspect.id.unwrap_or_default(),
            digest,
        }))
    }

    /// Pull `image` (by tag, or by digest when it is pinned `@sha256:…`) from its registry,
    /// calling `progress` with the bytes downloaded so far. Fails with
    /// [`DockerError::PullFailed`], saying whether the registry does not have it, does not
    /// answer, or refused the credentials.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<(), DockerError> {
        let r = Reference::parse(image);
        let from = match r.digest {
            Some(d) => format!("{}@{d}", r.repository),
            None => r.repository.to_owned(),
        };
        let options = CreateImageOptions {
            from_image: Some(from),
            tag: if r.digest.is_some() {
                None
            } else {
                r.tag.map(str::to_owned)
            },
            ..CreateImageOptions::default()
        };
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(r.registry.to_owned()),
            ..DockerCredentials::default()
        });
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        // Per layer: bytes downloaded so far and its size. Reported at most twice a second,
        // and at the end (a finished layer counts whole: its last "Downloading" is short of it).
        let mut layers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut reported = std::time::Instant::now();
        let bytes = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.pull_error(image, r.registry, auth.is_some(), e))?;
            let Some(id) = info.id else { continue };
            match info.status.as_deref() {
                Some("Downloading") => {
                    let detail = info.progress_detail.unwrap_or_default();
                    layers.insert(id, (bytes(detail.current), bytes(detail.total)));
                }
                // Downloaded whole (the engine may have said nothing while it downloaded a
                // small layer; extracting gives its size too).
                Some("Download complete" | "Extracting" | "Pull complete") => {
                    let total = bytes(info.progress_detail.and_then(|p| p.total));
                    let layer = layers.entry(id).or_default();
                    layer.1 = layer.1.max(total);
                    layer.0 = layer.1;
                }
                _ => continue,
            }
            if reported.elapsed() >= std::time::Duration::from_millis(500) {
                progress(layers.values().map(|l| l.0).sum());
                reported = std::time::Instant::now();
            }
        }
        if !layers.is_empty() {
            progress(layers.values().map(|l| l.0).sum());
        }
        Ok(())
    }

    fn pull_error(
        &self,
        image: &str,
        registry: &str,
        with_credentials: bool,
        e: bollard::errors::Error,
    ) -> DockerError {
        let message = match &e {
            bollard::errors::Error::DockerStreamError { error } => error.clone(),
            bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
            _ => {
                return self.err(
                    Subject::Image(image),
                    &format!("to pull image `{image}`"),
                    e,
                );
            }
        };
        DockerError::PullFailed {
            image: image.to_owned(),
            registry: registry.to_owned(),
            reason: pull_reason(&message, with_credentials).to_owned(),
            message,
            endpoint: self.endpoint().to_owned(),
        }
    }
}

/// Why a pull failed, from the engine's message (the registry's own words vary).
fn pull_reason(message: &str, with_credentials: bool) -> &'static str {
    let m = message.to_lowercase();
    if m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("no basic auth credentials")
        || m.contains("denied")
    {
        if with_credentials {
            "the registry refused the credentials"
        } else {
            "the registry wants credentials (`registry_auth`)"
        }
    } else if m.contains("connection refused")
        || m.contains("no such host")
        || m.contains("i/o timeout")
        || m.contains("timeout")
        || m.contains("connection reset")
        || m.contains("server misbehaving")
        || m.contains("dial tcp")
    {
        "the registry does not answer"
    } else if m.contains("not found") || m.contains("unknown") || m.contains("does not exist") {
        "the registry has no such image"
    } else {
        "the engine could not pull it"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_the_engine_reads_them() {
        let r = |s| Reference::parse(s);
        assert_eq!(
            r("127.0.0.1:5501/rb-test/tools:1"),
            Reference {
                registry: "127.0.0.1:5501",
                repository: "127.0.0.1:5501/rb-test/tools",
                tag: Some("1"),
                digest: None
            }
        );
        assert_eq!(r("postgres").tag, Some("latest"));
        assert_eq!(r("postgres").registry, "docker.io");
        assert_eq!(r("library/postgres:15").registry, "docker.io");
        assert_eq!(r("localhost/app").registry, "localhost");
        let pinned = r("127.0.0.1:5501/app@sha256:abcd");
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest, Some("sha256:abcd"));
        assert_eq!(pinned.repository, "127.0.0.1:5501/app");
        let both = r("reg.example:443/a/b:2@sha256:ef");
        assert_eq!((both.tag, both.digest), (Some("2"), Some("sha256:ef")));
        assert_eq!(both.registry, "reg.example:443");
    }

    #[test]
    fn pull_failures_are_named() {
        assert_eq!(
            pull_reason("manifest for x:1 not found: manifest unknown", false),
            "the registry has no such image"
        );
        assert_eq!(
            pull_reason(
                "Get \"http://127.0.0.1:5599/v2/\": dial tcp 127.0.0.1:5599: connect: connection refused",
                false
            ),
            "the registry does not answer"
        );
        assert_eq!(
            pull_reason("unauthorized: authentication required", true),
            "the registry refused the credentials"
        );
        assert_eq!(
            pull_reason("no basic auth credentials", false),
            "the registry wants credentials (`registry_auth`)"
        );
    }
}
