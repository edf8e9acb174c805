//! Connecting to the runbook's stores: one `object_store` client per store, built on first
//! use from the store's spec and its secrets.

use super::spec::{Scheme, StoreSpec, StoreUrl};
use crate::steps::cx::StepError;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default for how long transient errors are retried.
const RETRY_TIMEOUT: Duration = Duration::from_mins(2);

/// The runbook's stores, the secret values their credentials come from, and the runbook's
/// name and id for manifests.
#[derive(Default)]
pub struct Stores {
    specs: BTreeMap<String, StoreSpec>,
    secrets: BTreeMap<String, String>,
    /// The runbook's name (manifests record it).
    pub runbook: String,
    built: Mutex<HashMap<String, Arc<Store>>>,
}

/// One connected store.
pub struct Store {
    pub name: String,
    pub url: StoreUrl,
    pub spec: StoreSpec,
    pub inner: Arc<dyn ObjectStore>,
}

impl Stores {
    pub fn new(
        specs: BTreeMap<String, StoreSpec>,
        secrets: BTreeMap<String, String>,
        runbook: String,
    ) -> Self {
        Self {
            specs,
            secrets,
            runbook,
            built: Mutex::default(),
        }
    }

    /// A secret's value (identities for decryption).
    pub fn secret(&self, name: &str) -> Result<&str, StepError> {
        self.secrets
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| StepError::failed(format!("unknown secret `{name}`")))
    }

    /// The store named `name`, connected on first use.
    pub fn get(&self, name: &str) -> Result<Arc<Store>, StepError> {
        let mut built = self.built.lock().expect("stores lock");
        if let Some(s) = built.get(name) {
            return Ok(s.clone());
        }
        let spec = self
            .specs
            .get(name)
            .ok_or_else(|| StepError::failed(format!("unknown store `{name}`")))?;
        let store = Arc::new(connect(name, spec, &self.secrets).map_err(StepError::Failed)?);
        built.insert(name.to_owned(), store.clone());
        Ok(store)
    }
}

/// Builds the client of one store; the error names the store, never a secret.
pub fn connect(
    name: &str,
    spec: &StoreSpec,
    secrets: &BTreeMap<String, String>,
) -> Result<Store, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = StoreUrl::parse(&spec.url).map_err(|e| format!("store `{name}`: {e}"))?;
    let secret = |field: &Option<String>| -> Result<Option<String>, String> {
        field
            .as_ref()
            .map(|s| {
                secrets
                    .get(s)
                    .cloned()
                    .ok_or_else(|| format!("store `{name}`: unknown secret `{s}`"))
            })
            .transpose()
    };
    let retry = RetryConfig {
        retry_timeout: spec.retry_timeout.map_or(RETRY_TIMEOUT, |d| d.0),
        ..RetryConfig::default()
    };
    let options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_mins(5));
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.scheme {
        Scheme::S3 => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(&url.bucket)
                .with_retry(retry)
                .with_client_options(options);
            if let Some(e) = &spec.endpoint {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
            }
            if let Some(r) = &spec.region {
                b = b.with_region(r);
            }
            if let Some(k) = secret(&spec.access_key_id)? {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = secret(&spec.secret_access_key)? {
                b = b.with_secret_access_key(k);
            }
            if let Some(k) = secret(&spec.session_token)? {
                b = b.with_token(k);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        Scheme::Gcs => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&url.bucket)
                .with_retry(retry)
                .with_client_options(options);
            if let Some(k) = secret(&spec.service_account_key)? {
                b = b.with_service_account_key(k);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        Scheme::Azure => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&url.bucket)
                .with_retry(retry)
                .with_client_options(options);
            if let Some(a) = &spec.account {
                b = b.with_account(a);
            }
            if let Some(k) = secret(&spec.access_key)? {
                b = b.with_access_key(k);
            }
            if let Some(e) = &spec.endpoint {
                b = b
                    .with_endpoint(e.clone())
                    .with_allow_http(e.starts_with("http://"));
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        Scheme::File => {
            std::fs::create_dir_all(&url.prefix)
                .map_err(|e| format!("store `{name}`: cannot create `{}`: {e}", url.prefix))?;
            object_store::local::LocalFileSystem::new_with_prefix(&url.prefix)
                .map(|s| Arc::new(s) as _)
        }
    };
    let inner = built.map_err(|e| format!("store `{name}`: {e}"))?;
    Ok(Store {
        name: name.to_owned(),
        url,
        spec: spec.clone(),
        inner,
    })
}

impl Store {
    /// The object path of `key` (below the store's prefix).
    pub fn path(&self, key: &str) -> ObjectPath {
        let key = key.trim_matches('/');
        if self.url.scheme == Scheme::File || self.url.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.url.prefix))
        }
    }

    /// `key` back from an object path.
    pub fn key_of(&self, path: &ObjectPath) -> String {
        let p = path.as_ref();
        if self.url.scheme == Scheme::File || self.url.prefix.is_empty() {
            p.to_owned()
        } else {
            p.strip_prefix(&format!("{}/", self.url.prefix))
                .unwrap_or(p)
                .to_owned()
        }
    }

    /// `store `offsite` (bucket `rb` at http://127.0.0.1:3900)`, for errors.
    pub fn describe(&self) -> String {
        match self.url.scheme {
            Scheme::File => format!("store `{}` (directory `{}`)", self.name, self.url.prefix),
            _ => {
                let at = self
                    .spec
                    .endpoint
                    .as_deref()
                    .map_or_else(|| format!(" ({})", self.spec.url), |e| format!(" at {e}"));
                format!("store `{}` (bucket `{}`{at})", self.name, self.url.bucket)
            }
        }
    }

    /// An `object_store` error as a step failure naming the store, with a hint for the
    /// usual causes.
    pub fn error(&self, what: &str, e: &object_store::Error) -> StepError {
        StepError::failed(format!("{}: {what}: {}", self.describe(), explain(e)))
    }
}

/// The error's text with what it usually means; an S3 XML error body is shortened to its
/// code and message.
pub fn explain(e: &object_store::Error) -> String {
    let text = shorten_xml(&e.to_string());
    let hint = if text.contains("NoSuchBucket") {
        " (the bucket does not exist)"
    } else if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("AccessDenied")
        || text.contains("403")
    {
        " (the credentials were refused)"
    } else if text.contains("error sending request") || text.contains("Connection refused") {
        " (the store cannot be reached)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// `…: <?xml …><Error><Code>C</Code><Message>M</Message>…</Error>` → `…: C: M`.
fn shorten_xml(text: &str) -> String {
    let Some(start) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_owned();
    };
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let from = text[start..].find(&open)? + start + open.len();
        let to = text[from..].find(&close)? + from;
        Some(text[from..to].to_owned())
    };
    let end = text[start..]
        .find("</Error>")
        .map_or(text.len(), |i| start + i + "</Error>".len());
    let body = match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => return text.to_owned(),
    };
    format!("{}{body}{}", &text[..start], &text[end..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_error_bodies_are_shortened_to_code_and_message() {
        let t = "list: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Forbidden: Invalid signature</Message><Resource>/b</Resource></Error>";
        assert_eq!(
            super::shorten_xml(t),
            "list: 403 Forbidden: AccessDenied: Forbidden: Invalid signature"
        );
        assert_eq!(super::shorten_xml("plain"), "plain");
    }
}
